#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest level of `make bench-icount` (tools/bench/icount.sh, through
# vm-run.sh with the insn-count plugin; one vCPU, nested KVM): the
# instructions the whole test VM executes per I/O of a nested guest's fio,
# for each device, and for fio on the backend in this VM (native-1vcpu,
# the floor: what the backend and one fio cost without a nested guest):
#
#   guest-vhost-nvme        -device vhost-nvme,backend=/dev/nullb0
#   guest-nvme              QEMU's nvme, shadow doorbells, ioeventfd=on
#   guest-virtio-blk        virtio-blk-pci
#   guest-virtio-blk-iothread  the same with an iothread
#
# The baselines on a raw drive with cache=none,aio=native. The nested guest
# runs l2-tests.sh icount: each configuration with ICOUNT_SMALL and
# ICOUNT_LARGE I/Os between markers. Before each nested boot this VM
# resyncs the plugin's mark numbers, so a segment is one boot; writes
# $VM_OUT/icount-runs.txt (SEGMENT INDEX MODE RW BS QD IOS STATUS), this
# VM's /proc/kallsyms as $VM_OUT/kallsyms and, per nested boot, the nested
# kernel's _text and module text symbols as $VM_OUT/kallsyms-l2.SEGMENT
# (for the profile of kernel functions, with the plugin's profile=on).
#
# Usage: guest-level-icount.sh QEMU KERNEL INITRD
set -uo pipefail
: "${VM_OUT:?run this through tools/bench/icount.sh}"
# shellcheck source=../testing/vm/guest-lib.sh
. tools/testing/vm/guest-lib.sh
# shellcheck disable=SC1091
[ -f "$VM_OUT/icount.env" ] && . "$VM_OUT/icount.env"

QEMU=$1 KERNEL=$2 INITRD=$3
INITRD_MIN=$INITRD
CONFIGS=${ICOUNT_CONFIGS:-randread:4096:1 randread:4096:16 read:131072:16}
SMALL=${ICOUNT_SMALL:-2000}
LARGE=${ICOUNT_LARGE:-12000}
REPS=${ICOUNT_REPS:-2}
DEVICES=${ICOUNT_GUEST_DEVICES:-vhost-nvme nvme virtio-blk virtio-blk-iothread}
MARK=$PWD/tools/bench/icount/build/mark
DEV=/dev/nullb0
SERIAL=vn-icount-0001
RUNS=$VM_OUT/icount-runs.txt
: > "$RUNS"
seg=0

say() { echo "icount: $*"; }
log() { say "$@"; }	# for l2-run.sh
# shellcheck source=../testing/e2e/l2-run.sh
. tools/testing/e2e/l2-run.sh

resync() { "$MARK" resync && seg=$((seg + 1)); }

say "guest level: loading vhost_nvme.ko, null_blk (memory_backed=0 irqmode=0), kvm_amd"
vn_load_module || { say "FAILED: cannot load vhost_nvme.ko"; exit 1; }
modprobe null_blk nr_devices=1 memory_backed=0 irqmode=0 gb=16 ||
	{ say "FAILED: cannot load null_blk"; exit 1; }
# vgif=0: see guest-e2e.sh (the test VM lost interrupts with it on).
modprobe kvm_amd vgif=0 2>/dev/null || modprobe kvm_intel 2>/dev/null || true
[ -c /dev/kvm ] && [ -b "$DEV" ] && [ -x "$QEMU" ] && [ -x "$MARK" ] ||
	{ say "FAILED: no /dev/kvm, $DEV, $QEMU or $MARK"; exit 1; }
NSZE=$(cat /sys/block/nullb0/size)
cat /proc/kallsyms > "$VM_OUT/kallsyms"

# native-1vcpu: fio on the backend in this VM, the same marked runs.
native_run() {	# native_run RW BS QD IOS [fio options]
	local rw=$1 bs=$2 qd=$3 ios=$4

	shift 4
	timeout -k 5 600 fio --name=icount --filename="$DEV" --ioengine=io_uring \
		--direct=1 --thread --rw="$rw" --bs="$bs" --iodepth="$qd" \
		--number_ios="$ios" --norandommap --randrepeat=0 "$@" > /dev/null 2>&1
}
resync || { say "FAILED: $MARK does not run"; exit 1; }
i=0
for ((rep = 1; rep <= REPS; rep++)); do
	for c in $CONFIGS; do
		IFS=: read -r rw bs qd <<< "$c"
		native_run "$rw" "$bs" "$qd" "$SMALL"	# uncounted: faults fio in
		for ios in $SMALL $LARGE; do
			native_run "$rw" "$bs" "$qd" "$ios" \
				--exec_prerun="$MARK start" --exec_postrun="$MARK stop"
			st=$?
			"$MARK" end
			i=$((i + 1))
			echo "$seg $i native-1vcpu $rw $bs $qd $ios $st" >> "$RUNS"
		done
	done
done
say "native-1vcpu: $i runs"

spec=$(echo "$CONFIGS" | tr ' ' ',')
failed=0
for d in $DEVICES; do
	drv="file=$DEV,if=none,id=d0,format=raw,cache=none,aio=native"
	L2_APPEND="e2e.icount=$spec e2e.ios=$SMALL:$LARGE e2e.reps=$REPS"
	case $d in
	vhost-nvme) L2_DEVICE=(-device "vhost-nvme,backend=$DEV,serial=$SERIAL") ;;
	nvme) L2_DEVICE=(-drive "$drv" -device "nvme,drive=d0,serial=$SERIAL,ioeventfd=on") ;;
	virtio-blk) L2_DEVICE=(-drive "$drv" -device "virtio-blk-pci,drive=d0")
		    L2_APPEND+=" e2e.dev=/dev/vda" ;;
	virtio-blk-iothread)
		L2_DEVICE=(-object iothread,id=io0 -drive "$drv"
			   -device "virtio-blk-pci,drive=d0,iothread=io0")
		L2_APPEND+=" e2e.dev=/dev/vda" ;;
	*) say "FAILED: unknown device $d"; failed=$((failed + 1)); continue ;;
	esac
	resync
	run_l2 "icount-$d" kvm icount 1800 300
	n=0
	while read -r _ idx rw bs qd ios st; do
		echo "$seg $idx guest-$d $rw $bs $qd $ios $st" >> "$RUNS"
		n=$((n + 1))
	done < <(tr -d '\r' < "$L2_CON" | grep '^E2E-ICOUNT ')
	tr -d '\r' < "$L2_CON" | sed -n 's/^E2E-KSYM //p' > "$VM_OUT/kallsyms-l2.$seg"
	say "guest-$d: $n runs, nested guest ${L2_STATUS}${L2_REASON:+ ($L2_REASON)}"
	[ "$L2_STATUS" = done ] || failed=$((failed + 1))
done
rmmod null_blk
vn_unload_module
say "guest level done: $failed nested guests failed"
[ "$failed" -eq 0 ]
