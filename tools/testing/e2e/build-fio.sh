#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build a static fio from Debian's fio source package (bookworm, the
# installed version) for the nested guest's initramfs: the dynamic fio pulls
# in ~60 libraries (an 88 MB initramfs). Idempotent and quiet; prints the
# path of the static binary. Cache: $VN_E2E_CACHE ($VN_CACHE/e2e).
set -euo pipefail

CACHE=${VN_E2E_CACHE:-${VN_CACHE:-/var/cache/vhost-nvme}/e2e}
log() { echo "build-fio: $*" >&2; }
die() { log "error: $*"; exit 1; }
quiet() {	# quiet LOG CMD...
	local lg=$1
	shift
	if ! "$@" > "$lg" 2>&1; then
		tail -n 20 "$lg" | sed 's/^/    /' >&2
		die "failed: $* (log: $lg)"
	fi
}

mkdir -p "$CACHE"
exec 8> "$CACHE/.fio.lock"
flock 8

for p in dpkg-dev libaio-dev zlib1g-dev gcc make; do
	s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$s" = "install ok installed" ] || die "missing package $p (tools/testing/deps.sh installs it)"
done

# A private apt configuration with bookworm's deb-src (the system's sources
# are left alone).
APTDIR=$CACHE/apt-bookworm
mkdir -p "$APTDIR/lists/partial" "$APTDIR/etc/none.d"
cat > "$APTDIR/etc/sources.list" <<EOS
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
EOS
APT_OPTS=(-o "Dir::Etc::SourceList=$APTDIR/etc/sources.list"
	  -o "Dir::Etc::SourceParts=$APTDIR/etc/none.d"
	  -o "Dir::State::Lists=$APTDIR/lists"
	  -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
	  -o "Debug::NoLocking=1")

# The installed fio's version if any, else bookworm's newest.
ver=$(dpkg-query -W -f='${Version}' fio 2>/dev/null || true)
OUT=$CACHE/fio-static-${ver:-latest}
if [ -n "$ver" ] && [ -x "$OUT/fio" ]; then
	echo "$OUT/fio"
	exit 0
fi
if [ -z "$(find "$APTDIR/lists" -maxdepth 1 -name '*Sources*' 2>/dev/null)" ]; then
	log "apt-get update (bookworm deb-src lists in $APTDIR)"
	quiet "$APTDIR/update.log" apt-get "${APT_OPTS[@]}" update
fi
if [ -z "$ver" ]; then
	ver=$(apt-cache "${APT_OPTS[@]}" showsrc fio | awk '/^Version:/{print $2}' | sort -V | tail -n1)
	OUT=$CACHE/fio-static-$ver
	[ -x "$OUT/fio" ] && { echo "$OUT/fio"; exit 0; }
fi
DL=$CACHE/fio-source-$ver
mkdir -p "$DL"
if ! ls "$DL"/fio_*.dsc > /dev/null 2>&1; then
	log "fetching fio $ver source"
	( cd "$DL" && quiet "$DL/fetch.log" apt-get "${APT_OPTS[@]}" source --download-only "fio=$ver" )
fi
SRC=$CACHE/fio-src-$ver
rm -rf "$SRC"
quiet "$CACHE/fio-extract.log" dpkg-source --no-check -x "$(ls "$DL"/fio_*.dsc | head -n1)" "$SRC"
log "building static fio $ver (~2 minutes)"
cd "$SRC"
quiet "$SRC/configure.log" ./configure --build-static --disable-native --disable-optimizations \
	--extra-cflags=-O2
quiet "$SRC/make.log" make -j"$(nproc)" fio
file fio | grep -q 'statically linked' || die "fio is not static"
mkdir -p "$OUT"
strip -o "$OUT/fio" fio
rm -rf "$SRC"
echo "$OUT/fio"
