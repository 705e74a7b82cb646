#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build QEMU (x86_64-softmmu) with the project's `-device vhost-nvme` from
# Debian's QEMU source package; idempotent and quiet. Prints the path of the
# built qemu-system-x86_64 on stdout (progress goes to stderr).
#
# - Source: trixie's `qemu` source package (10.0), fetched with apt through a
#   separate sources list and lists directory (the system's own apt setup and
#   default release are untouched), extracted with dpkg-source -x so that
#   Debian's patches are applied.
# - Meson: trixie's `meson` (1.7) .deb unpacked and put on PYTHONPATH;
#   the build dependencies installed with apt.
# - Patches: tools/qemu/patches/series, applied in order with
#   `patch -p1 --fuzz=0` (a patch that no longer applies fails the build):
#   hw/nvme's I/O-queue offload interface, and the Kconfig and meson.build
#   lines of the device.
# - The device: tools/qemu/vhost-nvme.c and the module's uapi header are
#   copied into hw/nvme/.
# - Devices: only those of tools/qemu/devices.mak (the pc machine, nvme,
#   vhost-nvme, virtio-blk-pci), installed as the source tree's
#   configs/devices/x86_64-softmmu/vhost-nvme.mak.
# - Cache: $VN_QEMU_CACHE (default $VN_CACHE/qemu; VN_CACHE defaults to
#   /var/cache/vhost-nvme). The source tree is keyed on the source version and the patches; the build on the
#   configure options as well; a change of the device only re-runs ninja,
#   and nothing at all happens when the stamp (a hash of tools/qemu/*, the patches, the
#   uapi header and the source version) matches.
# - The binary printed is a copy per stamp, $CACHE/bin/STAMP/, never
#   rewritten: a test VM may run on one (tools/testing/vm/vm-run.sh) while
#   the build tree is rebuilt for another tree (a negative control's); the
#   newest 24 copies are kept.
#
# Environment: VN_QEMU_CACHE, VN_QEMU_SUITE (trixie; "bookworm" gives 7.2 as
# a fallback), VN_QEMU_VERBOSE=1 for full build output.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${VN_QEMU_CACHE:-${VN_CACHE:-/var/cache/vhost-nvme}/qemu}
SUITE=${VN_QEMU_SUITE:-trixie}
UAPI=$REPO/include/uapi/linux/vhost_nvme.h

log() { echo "build-qemu: $*" >&2; }
die() { log "error: $*"; exit 1; }
quiet() {	# quiet LOG CMD...: run CMD, output to LOG, show its tail on failure
	local lg=$1
	shift
	if [ "${VN_QEMU_VERBOSE:-0}" = 1 ]; then
		"$@" 2>&1 | tee "$lg" >&2
		return "${PIPESTATUS[0]}"
	fi
	if ! "$@" > "$lg" 2>&1; then
		tail -n 30 "$lg" | sed 's/^/    /' >&2
		log "failed: $* (log: $lg)"
		return 1
	fi
}

CONFIGURE_OPTS=(--target-list=x86_64-softmmu --without-default-features
	--without-default-devices --with-devices-x86_64=vhost-nvme
	--enable-kvm --enable-tcg --enable-linux-aio
	--enable-virtfs --enable-attr --enable-plugins
	--disable-docs --disable-install-blobs --disable-download
	--disable-werror)

# --- keys ------------------------------------------------------------------------
hashfiles() { cat "$@" | sha256sum | cut -c1-16; }
mapfile -t patches < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' \
			     -e "s|^|$HERE/patches/|" "$HERE/patches/series")
[ ${#patches[@]} -gt 0 ] || die "no patches in $HERE/patches/series"
mapfile -t devfiles < <(find "$HERE" -maxdepth 1 -type f | LC_ALL=C sort)
fullkey() {	# fullkey SRCVER: the stamp of this tree's build
	(echo "$1 $SUITE"; cat "${devfiles[@]}" "${patches[@]}" "$UAPI") | sha256sum | cut -c1-16
}
outbin() { echo "$CACHE/bin/$1/qemu-system-x86_64"; }

# Without the lock: a binary of this stamp was published (the source
# version as the last run found it, in lists less than a day old).
APTDIR=$CACHE/apt-$SUITE
if [ -s "$APTDIR/srcver" ] &&
   [ -n "$(find "$APTDIR/lists" -maxdepth 1 -name '*Sources*' -mtime -1 2>/dev/null)" ]; then
	OUTBIN=$(outbin "$(fullkey "$(cat "$APTDIR/srcver")")")
	if [ -x "$OUTBIN" ]; then
		touch "${OUTBIN%/*}"
		echo "$OUTBIN"
		exit 0
	fi
fi

mkdir -p "$CACHE"
exec 9> "$CACHE/.lock"
flock 9

# --- host build dependencies (bookworm) -----------------------------------------
PKGS=(build-essential pkg-config ninja-build flex bison python3 python3-venv
      python3-setuptools libglib2.0-dev libpixman-1-dev
      libaio-dev zlib1g-dev libattr1-dev dpkg-dev xz-utils
      seabios ipxe-qemu qemu-system-data)
missing=()
for p in "${PKGS[@]}"; do
	s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$s" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || die "need root to install: ${missing[*]}"
	log "installing ${missing[*]}"
	# Others may be running apt: wait for its locks.
	apt_retry() {
		for _ in $(seq 60); do
			"$@" > "$CACHE/apt-install.log" 2>&1 && return 0
			grep -q 'Could not get lock' "$CACHE/apt-install.log" || break
			sleep 5
		done
		tail -n 20 "$CACHE/apt-install.log" | sed 's/^/    /' >&2
		die "failed: $*"
	}
	apt_retry apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt_retry \
		apt-get install -y -qq -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300 "${missing[@]}"
fi

# --- a private apt configuration for $SUITE ------------------------------------
mkdir -p "$APTDIR/lists/partial" "$APTDIR/archives/partial" "$APTDIR/etc"
cat > "$APTDIR/etc/sources.list" <<EOS
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $SUITE main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $SUITE main
EOS
APT_OPTS=(-o "Dir::Etc::SourceList=$APTDIR/etc/sources.list"
	  -o "Dir::Etc::SourceParts=$APTDIR/etc/none.d"
	  -o "Dir::State::Lists=$APTDIR/lists"
	  -o "Dir::Cache::Archives=$APTDIR/archives"
	  -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
	  -o "APT::Default-Release=$SUITE" -o "Debug::NoLocking=1")
mkdir -p "$APTDIR/etc/none.d"
# Refresh the lists once a day at most.
if [ -z "$(find "$APTDIR/lists" -maxdepth 1 -name '*Sources*' -mtime -1 2>/dev/null)" ]; then
	log "apt-get update ($SUITE lists in $APTDIR)"
	quiet "$APTDIR/update.log" apt-get "${APT_OPTS[@]}" update
fi
SRCVER=$(apt-cache "${APT_OPTS[@]}" showsrc qemu 2>/dev/null |
	 awk '/^Version:/{print $2}' | sort -V | tail -n1)
[ -n "$SRCVER" ] || die "no qemu source package in $SUITE"
echo "$SRCVER" > "$APTDIR/srcver"

# --- meson from trixie (bookworm's 1.0 is too old for QEMU 10) ----------------------
PYPATH=
if [ "$SUITE" != bookworm ]; then
	MESONDIR=$APTDIR/meson
	if [ ! -f "$MESONDIR/.unpacked" ]; then
		log "fetching $SUITE's meson"
		( cd "$APTDIR/archives" && quiet "$APTDIR/meson.log" \
			apt-get "${APT_OPTS[@]}" download meson )
		rm -rf "$MESONDIR"
		dpkg-deb -x "$(ls -t "$APTDIR"/archives/meson_*.deb | head -n1)" "$MESONDIR"
		touch "$MESONDIR/.unpacked"
	fi
	PYPATH=$MESONDIR/usr/lib/python3/dist-packages
fi

PATCHKEY=$(hashfiles "$HERE/patches/series" "${patches[@]}")
CONFKEY=$(echo "${CONFIGURE_OPTS[*]}" | cat - "${patches[@]}" "$HERE/devices.mak" |
	  sha256sum | cut -c1-16)
FULLKEY=$(fullkey "$SRCVER")

SRC=$CACHE/src-$SUITE-${SRCVER//[:~+]/_}-$PATCHKEY
BUILD=$SRC/build-$CONFKEY
BIN=$BUILD/qemu-system-x86_64
OUTBIN=$(outbin "$FULLKEY")
publish() {	# the build's binary as $OUTBIN, printed
	if [ ! -x "$OUTBIN" ]; then
		mkdir -p "${OUTBIN%/*}"
		cp "$BIN" "$OUTBIN.tmp"
		mv "$OUTBIN.tmp" "$OUTBIN"
		# shellcheck disable=SC2012	# names without spaces
		ls -td "$CACHE"/bin/*/ | tail -n +25 | xargs -r rm -rf
	fi
	touch "${OUTBIN%/*}"
	echo "$OUTBIN"
}
if [ -x "$OUTBIN" ] ||
   { [ -x "$BIN" ] && [ "$(cat "$BUILD/.vhost-nvme-stamp" 2>/dev/null)" = "$FULLKEY" ]; }; then
	publish
	exit 0
fi

# --- source tree -------------------------------------------------------------------
if [ ! -f "$SRC/.vhost-nvme-extracted" ]; then
	log "fetching qemu $SRCVER source from $SUITE"
	DL=$APTDIR/source-${SRCVER//[:~+]/_}
	mkdir -p "$DL"
	if ! ls "$DL"/*.dsc > /dev/null 2>&1; then
		( cd "$DL" && quiet "$DL/fetch.log" \
			apt-get "${APT_OPTS[@]}" source --download-only "qemu=$SRCVER" )
	fi
	rm -rf "$SRC"
	# Old trees of other versions or patches are not needed any more.
	find "$CACHE" -maxdepth 1 -name 'src-*' -type d -exec rm -rf {} +
	log "extracting (dpkg-source -x, Debian's patches applied)"
	quiet "$CACHE/extract.log" dpkg-source --no-check -x "$(ls "$DL"/qemu_*.dsc | head -n1)" "$SRC"
	for p in "${patches[@]}"; do
		log "applying $(basename "$p")"
		( cd "$SRC" && quiet "$CACHE/patch.log" \
			patch -p1 --forward --fuzz=0 --no-backup-if-mismatch -i "$p" )
	done
	touch "$SRC/.vhost-nvme-extracted"
fi

# Device sources (only rewritten when they differ, so ninja stays incremental).
install_if_changed() {
	cmp -s "$1" "$2" || cp "$1" "$2"
}
for f in "$HERE"/*.c "$HERE"/*.h; do
	[ -e "$f" ] || continue
	install_if_changed "$f" "$SRC/hw/nvme/$(basename "$f")"
done
install_if_changed "$UAPI" "$SRC/hw/nvme/vhost_nvme_uapi.h"
install_if_changed "$HERE/devices.mak" "$SRC/configs/devices/x86_64-softmmu/vhost-nvme.mak"

# --- configure and build ------------------------------------------------------------------
export PYTHONPATH=$PYPATH${PYTHONPATH:+:$PYTHONPATH}
if [ ! -f "$BUILD/build.ninja" ]; then
	log "configuring ($SRCVER)"
	# Builds with other configure options are not needed any more.
	find "$SRC" -maxdepth 1 -name 'build-*' -type d -exec rm -rf {} +
	mkdir -p "$BUILD"
	( cd "$BUILD" && quiet "$BUILD/configure.log" ../configure "${CONFIGURE_OPTS[@]}" )
fi
if [ -f "$BUILD/.vhost-nvme-stamp" ]; then
	log "rebuilding (device sources changed)"
else
	log "building (a first build takes 4-7 minutes on 2 cores)"
fi
start=$(date +%s)
quiet "$BUILD/ninja.log" ninja -C "$BUILD" -j"$(nproc)" qemu-system-x86_64
log "built in $(( $(date +%s) - start )) s: $BIN"
echo "$FULLKEY" > "$BUILD/.vhost-nvme-stamp"
publish
