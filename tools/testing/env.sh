# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
# Sourceable: sets the paths every vhost-nvme build/test script agrees on.
#
#   KVER     newest Debian 6.1 -amd64 kernel with a /lib/modules directory
#   KDIR     /lib/modules/$KVER/build (headers for out-of-tree module builds)
#   KSRC     unpacked Debian linux-source-6.1 (checkpatch.pl, full tree)
#   VMLINUZ  /boot/vmlinuz-$KVER (the kernel the test VM boots)
#   VN_CACHE cache directory outside the repo (/var/cache/vhost-nvme)
#   VN_REPO  repository root
#
# Any of them may be preset in the environment to override the default.
# Does not change shell options of the caller.

VN_REPO=${VN_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
VN_CACHE=${VN_CACHE:-/var/cache/vhost-nvme}

vn_newest_kver() {
	local d best=
	for d in /lib/modules/6.1.*-amd64; do
		[ -d "$d" ] || continue
		d=${d##*/}
		[[ $d =~ ^6\.1\.[0-9]+-[0-9]+-amd64$ ]] || continue
		best+="$d"$'\n'
	done
	printf '%s' "$best" | sort -V | tail -n1
}

KVER=${KVER:-$(vn_newest_kver)}
KDIR=${KDIR:-/lib/modules/$KVER/build}
KSRC=${KSRC:-$VN_CACHE/linux-source-6.1}
VMLINUZ=${VMLINUZ:-/boot/vmlinuz-$KVER}
export VN_REPO VN_CACHE KVER KDIR KSRC VMLINUZ
