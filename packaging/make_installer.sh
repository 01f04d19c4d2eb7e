#!/usr/bin/env bash
# Builds quire-VERSION-linux-x86_64.run: a self-extracting installer for any x86-64 Linux with
# glibc >= 2.34. It carries its own libraries (Qt, poppler, sentencepiece, SQLite, the CUDA runtime,
# ...) and Qt plugins, everything except glibc itself and the graphics driver (OpenGL/EGL, libcuda).
#   make_installer.sh BUILD_DIR OUTPUT
set -euo pipefail
build=$(cd "$1" && pwd)
out=$2
here=$(cd "$(dirname "$0")" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

cmake --install "$build" --prefix "$stage/quire" >/dev/null
lib="$stage/quire/lib/quire"
mkdir -p "$lib/plugins"
qtplugins=$(qtpaths6 --query QT_INSTALL_PLUGINS 2>/dev/null || echo /usr/lib/x86_64-linux-gnu/qt6/plugins)
for d in platforms sqldrivers imageformats xcbglintegrations platformthemes platforminputcontexts; do
  [ -d "$qtplugins/$d" ] && cp -r "$qtplugins/$d" "$lib/plugins/"
done
printf '[Paths]\nPlugins = ../lib/quire/plugins\n' > "$stage/quire/bin/qt.conf"

# Libraries provided by every system (glibc) or by its graphics driver are never bundled.
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libresolv\.so|libutil\.so|libGL|libEGL|libGLX|libOpenGL|libGLdispatch|libdrm|libcuda\.so|libnvidia)'
bundle() {
  ldd "$1" 2>/dev/null | awk '/=> \// {print $1, $3}' | while read -r name path; do
    [[ "$name" =~ $skip ]] && continue
    [ -e "$lib/$name" ] && continue
    cp -L "$path" "$lib/$name"
    bundle "$lib/$name"
  done
}
for f in "$stage"/quire/bin/quire "$stage"/quire/bin/quire-desktop $(find "$lib/plugins" -name '*.so'); do bundle "$f"; done
strip --strip-unneeded "$stage"/quire/bin/quire "$stage"/quire/bin/quire-desktop 2>/dev/null || true

tar -C "$stage" -czf "$stage/payload.tgz" quire
cat "$here/installer_header.sh" "$stage/payload.tgz" > "$out"
chmod +x "$out"
echo "installer: $out ($(du -h "$out" | cut -f1))"
