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
# (linux-image-amd64): the test VM boots each (VM_KERNEL, VM_MODULES_DIR of
# vm-run.sh; the guest's userland stays Debian 12's) and runs the selftests
# and the hostile suite there (tools/testing/vm/guest-kernel.sh), then the
# end-to-end tests with a nested guest on -device vhost-nvme (e2e.sh, the
# test VM on that kernel). KERNELS_VM=0 skips the VM runs, KERNELS_E2E=0
# the end-to-end tests (make check does: CI time).
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
HOSTILE_ARGS=${HOSTILE_ARGS:--n 200000 -i 20000 -k 20 -f 20}
VM=${KERNELS_VM:-1}

# The userspace side of the VM runs, built once with Debian 12's compiler:
# the guest's userland is Debian 12's whatever kernel it boots.
build_prog() {	# build_prog NAME LOG MAKE-ARGS...
	local name=$1 log=$2
	shift 2
	if run_logged "$log" make "$@"; then
		item pass "build $name"
	else
		item fail "build $name" "see $log"
		show "$log"
		VM=0
	fi
}
if [ "$VM" = 1 ]; then
	build_prog selftests "$RES/selftests-build.log" \
		-C tools/testing/selftests/vhost_nvme KSRC="$KSRC"
	build_prog "hostile suite" "$RES/hostile-build.log" -C tools/testing/hostile
	build_prog vhost-nvme-load "$RES/load-build.log" -C tools/vhost-nvme-load
	build_prog "fio engine" "$RES/fio-engine-build.log" -C tools/fio-vhost-nvme
fi

# vm_lane SUITE ROOT KVER: boot ROOT's kernel KVER in the test VM and run
# guest-kernel.sh there with the module built for it.
vm_lane() {
	local suite=$1 root=$2 kver=$3 out st t t0 before
	out=$RES/$suite-vm
	echo "check-kernels: $suite: selftests and hostile suite in a VM on $kver"
	t0=$(date +%s)
	# shellcheck disable=SC2086
	VM_KERNEL=$root/boot/vmlinuz-$kver VM_MODULES_DIR=$root/lib/modules/$kver \
		tools/testing/vm/vm-run.sh ${VM_RUN_OPTS:-} --timeout 1800 --out "$out" \
		tools/testing/vm/guest-kernel.sh "$root/src/vhost_nvme.ko" \
		"$root/lib/modules/$kver" $HOSTILE_ARGS 2>&1 | sed 's/^/    /' || true
	t=$(($(date +%s) - t0))
	if [ ! -f "$out/status" ]; then
		item fail "$suite: VM run on $kver ($((t / 60))m$((t % 60))s)" "no status; see $out/console.log"
	elif [ -s "$out/warnings.txt" ]; then
		item fail "$suite: VM run on $kver without kernel warnings" "see $out/warnings.txt"
	else
		item pass "$suite: VM run on $kver without kernel warnings ($((t / 60))m$((t % 60))s)"
	fi
	before=$FAIL
	tap_items "$suite" "$out/guest-kernel.tap"
	tap_items "$suite guest" "$out/guest-check.tap"
	tap_items "$suite selftest" "$out/selftests.tap"
	st=$(cat "$out/status" 2>/dev/null || echo none)
	if [ "$st" != 0 ] && [ "$st" != none ] && [ "$FAIL" = "$before" ]; then
		item fail "$suite: guest-kernel.sh" "exit status $st without a failing TAP line"
	fi
	[ ! -s "$out/hostile.summary" ] || echo "check-kernels: $suite: $(cat "$out/hostile.summary")"
}

# e2e_lane SUITE ROOT KVER: the end-to-end tests, the test VM on that kernel.
e2e_lane() {
	local suite=$1 root=$2 kver=$3 out erc=0 before
	out=$RES/$suite-e2e
	echo "check-kernels: $suite: end-to-end tests, the test VM on $kver"
	E2E_VM_KERNEL=$root/boot/vmlinuz-$kver E2E_VM_MODULES_DIR=$root/lib/modules/$kver \
		E2E_KO=$root/src/vhost_nvme.ko RESULTS=$out tools/testing/e2e/e2e.sh \
		> "$RES/$suite-e2e.log" 2>&1 || erc=$?
	before=$FAIL
	if [ -s "$out/e2e.tap" ]; then
		tap_items "$suite e2e" "$out/e2e.tap"
	else
		item fail "$suite: end-to-end tests" "no TAP output; see $RES/$suite-e2e.log"
	fi
	if [ "$erc" != 0 ] && [ "$FAIL" = "$before" ]; then
		item fail "$suite: end-to-end tests" "exit status $erc without a failing item"
	fi
}
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
		umount "$root/proc"
		if [ "$VM" = 1 ]; then
			vm_lane "$suite" "$root" "$kver"
			if [ "${KERNELS_E2E:-1}" = 1 ]; then
				e2e_lane "$suite" "$root" "$kver"
			else
				item skip "$suite: end-to-end tests on $kver" "KERNELS_E2E=0"
			fi
		else
			item skip "$suite: selftests and hostile suite on $kver" \
				"KERNELS_VM=0 or a test program did not build"
		fi
	else
		item fail "$suite: build for $kver" "see $RES/$suite-build.log"
		grep -E '(warning|error):' "$RES/$suite-build.log" | head -n 20 | sed 's/^/    /' || true
		umount "$root/proc"
	fi
done

echo "check-kernels: logs in $RES"
items_end
