#!/usr/bin/env bash
# ctest label `package`: builds the .deb and the self-extracting installer, checks the .deb with
# lintian, then in a clean Debian 12 root (debootstrap, minbase) installs each artefact, runs
# `quire --version` and `quire self-test` headless, uninstalls it and checks that no file is left.
# Exit 77 (ctest: skipped) when this machine cannot make such a root, saying why.
#   test_package.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
work="$build/package-test"
mirror=${QUIRE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
skip() { echo "SKIPPED: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root for debootstrap and chroot"
command -v debootstrap >/dev/null || skip "debootstrap is not installed (tools/setup.sh installs it)"
command -v lintian >/dev/null || skip "lintian is not installed (tools/setup.sh installs it)"

echo "== building the .deb and the installer"
(cd "$build" && cpack -G DEB >/dev/null)
cmake --build "$build" --target installer >/dev/null
deb=$(ls "$build"/quire_*_amd64.deb)
run=$(ls "$build"/quire-*-linux-x86_64.run)

echo "== lintian (errors fail the test)"
lintian --fail-on error --suppress-tags maintscript-calls-ldconfig "$deb"

mkdir -p "$work"
base="$work/bookworm-minbase.tar"
if [ ! -f "$base" ]; then
  echo "== debootstrap bookworm (once; cached in $base)"
  rm -rf "$work/base"
  debootstrap --variant=minbase bookworm "$work/base" "$mirror" > "$work/debootstrap.log" 2>&1 ||
    skip "debootstrap could not make a Debian 12 root (see $work/debootstrap.log)"
  tar -C "$work/base" -cf "$base" .
  rm -rf "$work/base"
fi
root="$work/root"
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT
rm -rf "$root"
mkdir -p "$root"
tar -C "$root" -xf "$base"
mount -t proc proc "$root/proc"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen "$@"; }
quire_named() { in_root find / -xdev \( -path /proc -o -path /tmp \) -prune -o -iname '*quire*' -print; }
snapshot() { in_root find / -xdev \( -path /proc -o -path /tmp -o -path /var/cache/apt -o -path /var/lib/apt/lists -o -path /var/log -o -path /root -o -path /var/lib/dpkg -o -path /var/cache/debconf -o -path /etc/ld.so.cache \) -prune -o -print | sort; }

echo "== .deb: install into the clean root"
cp "$deb" "$root/tmp/quire.deb"
in_root apt-get update -qq
before=$(snapshot)
DEBIAN_FRONTEND=noninteractive in_root apt-get install -y -qq /tmp/quire.deb > "$work/apt-install.log"
files=$(in_root dpkg -L quire)
in_root quire --version
in_root quire self-test
in_root quire-desktop --version
echo "== .deb: uninstall"
DEBIAN_FRONTEND=noninteractive in_root apt-get purge -y -qq quire > /dev/null
DEBIAN_FRONTEND=noninteractive in_root apt-get autoremove --purge -y -qq > /dev/null
# Quire's own files must all be gone. (Its dependencies' maintainer scripts leave system state such
# as /etc/machine-id and /run/dbus behind; that is theirs, not Quire's.)
left=""
for f in $files; do [ -f "$root$f" ] && left="$left"$'\n'"$f"; done
left="$left"$'\n'"$(quire_named)"
left=$(echo "$left" | sed '/^$/d' | sort -u)
if [ -n "$left" ]; then echo "files left behind by the .deb:"; echo "$left"; exit 1; fi
echo "no files left"

echo "== installer: install into the clean root (no Qt or other libraries installed there)"
# The one thing the installer takes from the system besides glibc: the OpenGL/EGL dispatch
# libraries (libglvnd), which must match the machine's graphics driver. Every desktop has them.
DEBIAN_FRONTEND=noninteractive in_root apt-get install -y -qq --no-install-recommends libegl1 libgl1 libopengl0 > /dev/null
cp "$run" "$root/tmp/quire.run"
before=$(snapshot)
in_root bash /tmp/quire.run --prefix /opt/quire
in_root /opt/quire/bin/quire --version
in_root /opt/quire/bin/quire self-test
in_root /opt/quire/bin/quire-desktop --version
[ -f "$root/usr/local/share/applications/io.github.quire.Quire.desktop" ] || { echo "no desktop entry"; exit 1; }
echo "== installer: uninstall"
in_root /opt/quire/uninstall.sh
left=$( (comm -13 <(echo "$before") <(snapshot); quire_named) | sed '/^$/d' | sort -u || true)
if [ -n "$left" ]; then echo "files left behind by the installer:"; echo "$left"; exit 1; fi
echo "no files left"
echo "package test passed"
