#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Install everything vhost-nvme needs to build and test; idempotent and quiet.
# Also unpacks Debian's linux-source-6.1 into $VN_CACHE (once per tarball
# version) and prints the paths the other scripts use (see env.sh).
#
# Usage: deps.sh [--bench|--kbuild|--dkms|--kernels]
# --bench: only what `make bench` needs (the module, the VMs, fio): no
# checkpatch/sparse/fuzzing tools and no linux-source (on a fresh machine
# they would take minutes of its 30).
set -euo pipefail

PKGS=(linux-headers-amd64 linux-image-amd64 qemu-system-x86
      fio nvme-cli busybox-static kmod cpio xz-utils python3 gcc make file
      e2fsprogs util-linux perl dmsetup patch	# patch: tools/testing/negative
      ovmf mtools)	# the e2e OVMF boot: its firmware, a FAT image
BENCH=0
case ${1:-} in
--bench)
	BENCH=1
	;;
*)
	PKGS+=(linux-source-6.1 sparse
	       clang libclang-rt-dev)	# libFuzzer + sanitizers for tools/testing/fuzz
	;;
esac
case ${1:-} in
--kbuild)	# building in a kernel tree: check-debug's kernel, check-intree
	PKGS+=(bc bison flex libelf-dev libssl-dev)
	;;
--dkms)		# make dkms, check-dkms
	PKGS+=(dkms)
	;;
--kernels)	# check-kernels' chroots
	PKGS+=(debootstrap)
	;;
esac

log() { echo "deps: $*"; }

missing=()
for p in "${PKGS[@]}"; do
	s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$s" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
	log "all ${#PKGS[@]} packages installed"
else
	[ "$(id -u)" -eq 0 ] || { log "need root to install: ${missing[*]}" >&2; exit 1; }
	log "installing: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		-o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null
	log "installed"
fi

# shellcheck source=env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

[ -n "$KVER" ] || { log "no 6.1 -amd64 kernel in /lib/modules" >&2; exit 1; }
[ -d "$KDIR" ] || { log "no headers at $KDIR (linux-headers-$KVER missing?)" >&2; exit 1; }
[ -f "$VMLINUZ" ] || { log "no kernel image $VMLINUZ" >&2; exit 1; }

# Unpack linux-source once per tarball version into the cache.
unpack_source() {
	TARBALL=/usr/src/linux-source-6.1.tar.xz
	[ -f "$TARBALL" ] || { log "missing $TARBALL" >&2; exit 1; }
	pkgver=$(dpkg-query -W -f='${Version}' linux-source-6.1)
	key="$pkgver $(stat -c '%s %Y' "$TARBALL")"
	stamp=$KSRC/.vhost-nvme-unpacked

	mk_kernelversion() {	# "6.1.192" from a tree's top Makefile
		awk '/^VERSION =/{v=$3} /^PATCHLEVEL =/{p=$3} /^SUBLEVEL =/{s=$3}
		     END{if (v != "") print v "." p "." s}' "$1/Makefile" 2>/dev/null
	}

	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
		:
	elif [ ! -f "$stamp" ] && [ -f "$KSRC/scripts/checkpatch.pl" ] &&
	     [ "$(mk_kernelversion "$KSRC")" = "${pkgver%%-*}" ]; then
		# Unpacked before (by hand or an older script) from the same version.
		echo "$key" > "$stamp"
	else
		log "unpacking $TARBALL ($pkgver) into $KSRC"
		mkdir -p "$VN_CACHE"
		tmp=$(mktemp -d "$VN_CACHE/.unpack.XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		tar -C "$tmp" -xJf "$TARBALL"
		[ -d "$tmp/linux-source-6.1" ] || { log "unexpected tarball layout" >&2; exit 1; }
		echo "$key" > "$tmp/linux-source-6.1/.vhost-nvme-unpacked"
		rm -rf "$KSRC.old"
		[ ! -e "$KSRC" ] || mv "$KSRC" "$KSRC.old"
		mv "$tmp/linux-source-6.1" "$KSRC"
		rm -rf "$KSRC.old"
	fi
}
[ "$BENCH" = 1 ] || unpack_source

echo "KVER=$KVER"
echo "KDIR=$KDIR"
[ "$BENCH" = 1 ] || echo "KSRC=$KSRC"
echo "VMLINUZ=$VMLINUZ"
