#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check-kernels`: build the module for the kernels users run besides
# Debian 12's 6.1: Debian trixie's (6.12 LTS) and the newest Debian ships
# (sid's).  Each is built with the compiler that kernel was built with, in a
# debootstrap chroot of its suite kept in $VN_CACHE/kernels/SUITE (made once,
# then only updated): gcc-14 for trixie, sid's for sid.  The module is built
# with W=1 against that suite's linux-headers-amd64; a build with a warning
# fails.  The kernels' images and modules land in the chroots too
# (linux-image-amd64), for a test VM lane on them, which does not exist yet.
# The mirror's sid index can be past its Valid-Until date here: apt is told
# not to check it.  Ends with "N passed, N failed, N skipped"; logs in $RESULTS
# (default results/check-kernels).
#
#   tools/testing/check-kernels.sh [SUITE...]     default: trixie sid
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
[ "$(id -u)" -eq 0 ] || { echo "check-kernels: needs root (debootstrap, chroot)" >&2; exit 1; }
# shellcheck source=items.sh
. tools/testing/items.sh
items_lane check-kernels --kernels
# shellcheck source=env.sh
. tools/testing/env.sh

[ $# -gt 0 ] || set -- trixie sid
PKGS="gcc make perl libc6-dev linux-headers-amd64 linux-image-amd64"

for suite in "$@"; do
	root=$VN_CACHE/kernels/$suite
	if [ ! -f "$root/.vhost-nvme-ready" ]; then
		echo "check-kernels: debootstrap $suite in $root"
		rm -rf "$root"
		mkdir -p "$root"
		if ! run_logged "$RES/$suite-debootstrap.log" nice -n 10 debootstrap \
				--variant=minbase "$suite" "$root" http://deb.debian.org/debian; then
			item fail "$suite: debootstrap" "see $RES/$suite-debootstrap.log"
			continue
		fi
		touch "$root/.vhost-nvme-ready"
	fi
	mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
	# shellcheck disable=SC2086
	if ! run_logged "$RES/$suite-apt.log" nice -n 10 chroot "$root" bash -c \
			"apt-get -o Acquire::Check-Valid-Until=false update -qq &&
			 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PKGS"; then
		item fail "$suite: compiler and kernel headers" "see $RES/$suite-apt.log"
		umount "$root/proc"
		continue
	fi
	kver=$(chroot "$root" bash -c 'ls -d /usr/src/linux-headers-*-amd64 | grep -v cloud | grep -v -- -rt- | sort -V | tail -n1')
	kver=${kver#/usr/src/linux-headers-}
	cc=$(chroot "$root" bash -c "grep -o 'gcc-[0-9]*' /usr/src/linux-headers-$kver/Makefile /usr/src/linux-headers-$kver/.config 2>/dev/null | head -n1 | cut -d: -f2")
	rm -rf "$root/src"
	mkdir -p "$root/src"
	git ls-files -z Kbuild drivers include | tar --null -T - -cf - | tar -xf - -C "$root/src"
	if run_logged "$RES/$suite-build.log" nice -n 10 chroot "$root" \
			make -C "/usr/src/linux-headers-$kver" M=/src W=1 modules &&
	   [ -f "$root/src/vhost_nvme.ko" ] &&
	   ! grep -E '(warning|error):' "$RES/$suite-build.log" | grep -q .; then
		item pass "$suite: vhost_nvme.ko for $kver (${cc:-its compiler}), W=1, no warning"
	else
		item fail "$suite: build for $kver" "see $RES/$suite-build.log"
		grep -E '(warning|error):' "$RES/$suite-build.log" | head -n 20 | sed 's/^/    /' || true
	fi
	item skip "$suite: selftests on $kver" "no test VM lane on that kernel yet"
	umount "$root/proc"
done

echo "check-kernels: logs in $RES"
items_end
