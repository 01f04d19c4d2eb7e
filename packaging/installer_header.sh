#!/usr/bin/env bash
# Quire self-extracting installer. The installed tree, a desktop entry, icons and an uninstaller.
#   bash quire-*.run [--prefix DIR]     (or make it executable and run it)
# Default prefix: /opt/quire as root, ~/.local/opt/quire otherwise. Uninstall: PREFIX/uninstall.sh
set -euo pipefail
prefix=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --help|-h) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" -eq 0 ]; then
  : "${prefix:=/opt/quire}"; share=/usr/local/share
else
  : "${prefix:=$HOME/.local/opt/quire}"; share=${XDG_DATA_HOME:-$HOME/.local/share}
fi
if [ -e "$prefix/uninstall.sh" ]; then
  echo "Quire is already installed in $prefix; removing the old version first"
  "$prefix/uninstall.sh" >/dev/null
fi
line=$(awk '/^__PAYLOAD__$/ {print NR + 1; exit 0}' "$0")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tail -n +"$line" "$0" | tar -xzf - -C "$tmp"
mkdir -p "$prefix"
cp -a "$tmp/quire/." "$prefix/"
manifest="$prefix/.install-manifest"
dirs="$prefix/.install-dirs"   # folders outside the prefix that this installer created
(cd "$prefix" && find . -type f -o -type l) | sed "s|^\.|$prefix|" > "$manifest"
: > "$dirs"  # after the manifest: the uninstaller reads it once the listed files are gone
makedir() {  # mkdir -p that records each folder it creates
  local d=$1 missing=()
  while [ ! -d "$d" ]; do missing=("$d" "${missing[@]}"); d=$(dirname "$d"); done
  for m in "${missing[@]}"; do mkdir "$m" && echo "$m" >> "$dirs"; done
}
app=io.github.quire.Quire
makedir "$share/applications"
sed "s|^Exec=quire-desktop|Exec=$prefix/bin/quire-desktop|" "$prefix/share/applications/$app.desktop" > "$share/applications/$app.desktop"
echo "$share/applications/$app.desktop" >> "$manifest"
for icon in "$prefix"/share/icons/hicolor/*/apps/$app.*; do
  rel=${icon#"$prefix/share/"}
  makedir "$share/$(dirname "$rel")"
  cp "$icon" "$share/$rel"
  echo "$share/$rel" >> "$manifest"
done
cat > "$prefix/uninstall.sh" <<UNINSTALL
#!/usr/bin/env bash
# Removes Quire from $prefix and the desktop entry and icons it added. Your libraries and chats
# (in ~/.local/share/quire) are kept.
set -u
while IFS= read -r f; do rm -f "\$f"; done < "$manifest"
sort -r "$dirs" | while IFS= read -r d; do rmdir "\$d" 2>/dev/null; done
rm -f "$manifest" "$dirs" "$prefix/uninstall.sh"
find "$prefix" -depth -type d -empty -delete 2>/dev/null
rmdir "$prefix" 2>/dev/null || true
command -v update-desktop-database >/dev/null && update-desktop-database "$share/applications" 2>/dev/null || true
echo "Quire removed from $prefix"
UNINSTALL
chmod +x "$prefix/uninstall.sh"
command -v update-desktop-database >/dev/null && update-desktop-database "$share/applications" 2>/dev/null || true
echo "Quire installed in $prefix"
echo "  command line: $prefix/bin/quire    window: $prefix/bin/quire-desktop (also in your applications menu)"
echo "  uninstall:    $prefix/uninstall.sh"
exit 0
__PAYLOAD__
