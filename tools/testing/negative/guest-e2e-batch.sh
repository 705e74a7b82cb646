#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of the negative controls' e2e lane (run by
# tools/testing/negative/run.sh through vm-run.sh): several controls in one
# test VM, as guest-batch.sh does for the selftest lane.
#
#   guest-e2e-batch.sh KERNEL INITRD INITRD_MIN DIR...
#
# For each control directory DIR (its patched tree in DIR/tree with the
# module built, the path of its QEMU build in DIR/qemu, its e2e plan in
# DIR/plan; all prepared on the host), run DIR/tree's guest-e2e.sh with
# VM_OUT=DIR/vm from that tree, the nested guests booting KERNEL with
# INITRD (INITRD_MIN under nested TCG); DIR/vm/status gets its exit status.
# Between two controls the test VM's kernel is put back as a fresh boot
# has it: null_blk (whose memory would carry one control's data into the
# next one's checks) and KVM unloaded.
#
# A control that leaves the kernel unfit for the next one ends the boot, as
# in guest-batch.sh: a QEMU still running, vhost_nvme, null_blk or KVM that
# do not unload, a loop or dm device, a mount, or a kernel warning, a
# lockup or a hung task in its dmesg (DIR/vm/dirty says which).  The next
# controls then run in a fresh test VM.  A control that was running when
# the VM died or froze is marked DIR/vm/running.  One that runs longer than
# 25 minutes (a plan takes 2-8) is killed: DIR/vm/timedout.
set -uo pipefail
: "${VM_OUT:?run this through tools/testing/vm/vm-run.sh}"
KERNEL=$1 INITRD=$2 INITRD_MIN=$3
shift 3

# shellcheck source=batch-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/batch-lib.sh"

for dir in "$@"; do
	[ -f "$dir/vm/status" ] && continue	# done in an earlier boot
	mkdir -p "$dir/vm"
	: > "$dir/vm/params.sh"	# the plans' defaults, as e2e.sh without E2E_MIG_*
	touch "$dir/vm/running"
	dmesg -c > /dev/null
	echo "# negative control ${dir##*/}: e2e plan $(cat "$dir/plan")"
	(cd "$dir/tree" && VM_OUT="$dir/vm" timeout -k 30 1500 \
		bash tools/testing/e2e/guest-e2e.sh "$(cat "$dir/qemu")" "$KERNEL" "$INITRD" \
		"$(cat "$dir/plan")" "$INITRD_MIN") 2>&1 | tee "$dir/vm/guest.log"
	rc=${PIPESTATUS[0]}
	[ "$rc" = 124 ] && touch "$dir/vm/timedout"
	pkill -9 qemu-system 2>/dev/null && sleep 2
	for m in null_blk kvm_amd kvm_intel kvm; do
		[ ! -d /sys/module/$m ] || modprobe -r $m
	done
	batch_done "$dir" "$rc" && exit 0
done
exit 0
