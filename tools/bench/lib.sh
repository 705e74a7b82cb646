# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# What `make bench` and `make bench-icount` build before their test VMs
# (sourced by bench.sh and icount.sh after tools/testing/env.sh; needs REPO,
# KDIR, KVER and a say function).

# bench_build OUT GUEST: the module and the fio engine; with GUEST=1 also
# QEMU with -device vhost-nvme, a static fio and the nested guest's
# initramfs, whose paths go to QEMU, FIO and INITRD.  Logs in OUT; a
# failure shows its log's end and returns 1.
# shellcheck disable=SC2034	# QEMU, FIO and INITRD are for the caller
bench_build() {
	local out=$1 guest=$2

	case $VN_CACHE/ in
	/tmp/*|/run/*|/dev/*)
		# The test VM sees the host's files, but has its own /tmp.
		say "VN_CACHE=$VN_CACHE: the test VM cannot see it (its /tmp, /run and /dev are its own)"
		return 1 ;;
	esac
	say "building the module against $KDIR"
	make -C "$KDIR" M="$REPO" modules > "$out/build.log" 2>&1 ||
		{ tail -n 30 "$out/build.log"; say "module build failed"; return 1; }
	say "building the fio engine (fio's source headers are fetched once)"
	make -C "$REPO/tools/fio-vhost-nvme" > "$out/build-engine.log" 2>&1 ||
		{ tail -n 30 "$out/build-engine.log"; say "engine build failed"; return 1; }
	[ "$guest" = 1 ] || return 0
	say "building QEMU with -device vhost-nvme (the first build, fetch included, takes 5-8 minutes)"
	"$REPO/tools/qemu/build-qemu.sh" > "$out/build-qemu.log" 2>&1 ||
		{ tail -n 30 "$out/build-qemu.log"; say "QEMU build failed"; return 1; }
	QEMU=$(tail -n1 "$out/build-qemu.log")
	say "static fio and the nested guest's initramfs"
	FIO=$("$REPO/tools/testing/e2e/build-fio.sh" 2> "$out/build-fio.log" | tail -n1) ||
		{ tail -n 30 "$out/build-fio.log"; say "static fio build failed"; return 1; }
	INITRD=$("$REPO/tools/testing/e2e/mk-initramfs.sh" "$KVER" "$FIO" 2> "$out/initramfs.log" |
		 tail -n1) || { tail -n 30 "$out/initramfs.log"; say "initramfs build failed"; return 1; }
}
