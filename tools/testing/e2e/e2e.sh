#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check-e2e`: end-to-end tests of QEMU's -device vhost-nvme with a real
# Linux guest. Builds QEMU with the device (tools/qemu/build-qemu.sh), the
# module, a static fio and the nested guest's initramfs, then boots the test
# VM (vm-run.sh --smp 1) and runs guest-e2e.sh in it: the nested guest runs
# under KVM (nested SVM inside the TCG test VM) and once more under nested
# TCG. Results as TAP in $RESULTS/e2e.tap (default results/e2e); the last
# line is "N passed, N failed, N skipped". Exit status 1 if anything failed.
#
# Usage: e2e.sh [check|bench|check-kvm|check-migrate|...] (guest-e2e.sh
# lists the plans)
#   bench: no checks; the nested guest runs fio through -device vhost-nvme
#          and the IOPS and latencies are printed (used by `make run`).
#   check-kvm: only the full pass under nested KVM (and its control).
#   check-migrate: only the live-migration pass (README.md), configured by
#          E2E_MIG_DEVICE (vhost-nvme, the default, nvme or virtio-blk),
#          E2E_MIG_DEVICE_OPTS, E2E_MIG_ODD_OPTS, E2E_MIG_VARIANTS,
#          E2E_MIG_VARIANT_COUNT,
#          E2E_MIG_QEMU_OPTS, E2E_MIG_APPEND, E2E_MIG_COUNT, E2E_MIG_MEM.
#   check-cpr: the same pass with live updates (cpr-transfer) instead.
#   check-live: both passes, each with its variant pass (make check).
# Environment: RESULTS, VM_RUN_OPTS (extra vm-run.sh options), E2E_TIMEOUT
# (test-VM timeout, default 2400 s); E2E_VM_KERNEL, E2E_VM_MODULES_DIR and
# E2E_KO: boot the test VM on another kernel (its image, its modules
# directory, vhost_nvme.ko built for it; make check-kernels). The nested
# guest's kernel stays Debian 12's.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$REPO"
PLAN=${1:-check}
RES=${RESULTS:-$REPO/results/e2e}
[ "$PLAN" = bench ] && RES=${RESULTS:-$REPO/results/e2e-bench}
rm -rf "$RES"
mkdir -p "$RES"
TAP=$RES/e2e.tap
: > "$TAP"
N=0 PASS=0 FAIL=0 SKIP=0

tap() {	# tap ok|"not ok" DESCRIPTION
	N=$((N + 1))
	echo "$1 $N - $2" >> "$TAP"
	echo "e2e: $1 $N - $2"
	case "$1 $2" in
	*"# SKIP"*) SKIP=$((SKIP + 1)) ;;
	"ok "*) PASS=$((PASS + 1)) ;;
	*) FAIL=$((FAIL + 1)) ;;
	esac
}
finish() {
	echo "e2e: logs in $RES"
	echo "$PASS passed, $FAIL failed, $SKIP skipped"
	[ "$FAIL" -eq 0 ]
	exit $?
}
step() {	# step DESCRIPTION LOG CMD...: a build step as a TAP line
	local d=$1 lg=$2 t0
	shift 2
	t0=$(date +%s)
	if "$@" > "$lg" 2>&1; then
		tap ok "$d ($(( $(date +%s) - t0 ))s)"
	else
		tail -n 20 "$lg" | sed 's/^/    /'
		tap "not ok" "$d (see $lg)"
		finish
	fi
}

echo "e2e: deps"
step "deps" "$RES/deps.log" tools/testing/deps.sh
# shellcheck source=../env.sh
. tools/testing/env.sh

echo "e2e: building QEMU with -device vhost-nvme (the first build, fetch included, takes 5-8 minutes)"
step "build QEMU with -device vhost-nvme" "$RES/build-qemu.log" tools/qemu/build-qemu.sh
QEMU=$(tail -n1 "$RES/build-qemu.log")
echo "e2e: $QEMU"

echo "e2e: building the module"
step "build vhost_nvme.ko" "$RES/build-module.log" make -C "$KDIR" M="$REPO" modules

echo "e2e: static fio and the nested guest's initramfs"
step "build static fio" "$RES/build-fio.log" tools/testing/e2e/build-fio.sh
FIO=$(tail -n1 "$RES/build-fio.log")
step "build the nested guest's initramfs" "$RES/initramfs.log" \
	tools/testing/e2e/mk-initramfs.sh "$KVER" "$FIO"
INITRD=$(tail -n1 "$RES/initramfs.log")
step "build the nested guest's small initramfs (nested TCG)" "$RES/initramfs-min.log" \
	tools/testing/e2e/mk-initramfs.sh "$KVER" "$FIO" min
INITRD_MIN=$(tail -n1 "$RES/initramfs-min.log")
# The uncompressed kernel vm-run.sh extracts boots faster (PVH entry).
KERNEL=$VN_CACHE/vm/vmlinux-$KVER
[ -s "$KERNEL" ] || KERNEL=$VMLINUZ

# run_vm: one test VM; vm-run.sh kills it when its console has been silent
# for E2E_IDLE seconds (guest-e2e.sh prints a heartbeat every 30 s): the way
# the test VM itself hangs under nested KVM (its vCPU halted, never woken) is
# invisible from inside. Sets VM_HUNG=1 then.
L1=()
if [ -n "${E2E_VM_KERNEL:-}" ]; then
	L1=("$E2E_KO" "$E2E_VM_MODULES_DIR")
	export VM_KERNEL=$E2E_VM_KERNEL VM_MODULES_DIR=$E2E_VM_MODULES_DIR
fi
run_vm() {
	local tpid v
	# The test VM's scripts see none of this environment: the migration
	# pass's parameters go in a file in its output directory.
	mkdir -p "$RES/vm"
	for v in E2E_MIG_DEVICE E2E_MIG_DEVICE_OPTS E2E_MIG_QEMU_OPTS E2E_MIG_APPEND \
		 E2E_MIG_COUNT E2E_MIG_MEM E2E_MIG_ODD_OPTS E2E_MIG_VARIANTS \
		 E2E_MIG_VARIANT_COUNT; do
		[ -n "${!v:-}" ] && printf '%s=%q\n' "$v" "${!v}"
	done > "$RES/vm/params.sh"
	# shellcheck disable=SC2086
	tools/testing/vm/vm-run.sh --smp 1 --timeout "${E2E_TIMEOUT:-2400}" \
		--idle "${E2E_IDLE:-240}" ${VM_RUN_OPTS:-} --out "$RES/vm" \
		tools/testing/e2e/guest-e2e.sh "$QEMU" "$KERNEL" "$INITRD" "$1" "$INITRD_MIN" \
		"${L1[@]}" > "$RES/vm-run.log" 2>&1 &
	local vpid=$!
	tail -n +1 -F "$RES/vm-run.log" 2>/dev/null | sed 's/^/    /' &
	tpid=$!
	wait $vpid || true
	sleep 1
	kill $tpid 2>/dev/null || true
	wait $tpid 2>/dev/null || true
	VM_HUNG=0 VM_EMU=
	if [ -s "$RES/vm/.vmrun/revived" ]; then
		# Frozen (a halted vCPU nothing woke) and woken by vm-run.sh:
		# what ran after it is as valid as what ran before.
		echo "e2e: INFRA: the test VM froze and ran on once woken: $(tr '\n' ';' < "$RES/vm/.vmrun/revived")"
	fi
	if [ -f "$RES/vm/.vmrun/idle" ]; then
		echo "e2e: INFRA: the test VM's console was silent for $(sed -n 3p "$RES/vm/.vmrun/idle" 2>/dev/null)s: it was killed (its QEMU used $(sed -n 1p "$RES/vm/.vmrun/idle" 2>/dev/null) ms of CPU meanwhile; $(sed -n 2p "$RES/vm/.vmrun/idle" 2>/dev/null))"
		VM_HUNG=1
		# A vCPU halted with a deliverable interrupt it never took:
		# no guest (nor module) can do that, the emulator froze
		# (vm-run.sh, tools/testing/vm/freeze-class.py).
		if grep -q '^emulator: ' "$RES/vm/.vmrun/frozen-class" 2>/dev/null; then
			VM_EMU=$(sed -n '1s/^emulator: //p' "$RES/vm/.vmrun/frozen-class")
			echo "e2e: INFRA: the freeze is the emulator's: $VM_EMU"
		fi
	fi
}

echo "e2e: booting the test VM (--smp 1: nested KVM is reliable with one vCPU)"
t0=$(date +%s)
run_vm "$PLAN"
vm_note=
keep_attempt() {	# keep_attempt NAME: keep the logs of a hung test VM
	[ -d "$RES/vm" ] || return 0
	rm -rf "${RES:?}/vm-$1"
	mv "$RES/vm" "$RES/vm-$1"
	cp "$RES/vm-run.log" "$RES/vm-$1/vm-run.log"
}
# A hung test VM is not retried. The way it hangs under nested KVM is
# KVM-in-TCG's; the control tells that apart from a device bug: a test VM
# whose nested KVM guest runs on QEMU's own -device nvme, under the same
# conditions. If the control hangs or fails too, the nested KVM pass is a
# SKIP (infrastructure); if it runs to the end, the hang is a FAIL. Either
# way the rest of the tests then run without nested KVM (check-nokvm).
# A hang while the nested guest ran on QEMU's own -device nvme (guest-e2e.sh's
# pass on hw/nvme as patched, after the vhost-nvme pass ran to the end) has
# its control already: the vhost-nvme pass that ran before it in the same VM.
# hung_control: keep the hung VM's logs, boot the control (the nested KVM
# guest on QEMU's own -device nvme) in a test VM of its own; ctl is
# "passed" if it ran to the end, else "failed"; ctl_why says why a
# hang is no verdict. A freeze vm-run.sh found to be the emulator's needs
# no control: ctl is "emulator".
hung_control() {	# hung_control [PLAN DEVICE PATTERN]: the control
	local plan=${1:-control-kvm} dev=${2:-"QEMU's -device nvme"} pat=${3:-}
	keep_attempt hung
	if [ -n "$VM_EMU" ]; then
		ctl=emulator ctl_why="the freeze is the emulator's: $VM_EMU"
		echo "e2e: the test VM froze in the emulator; no control needed"
		return
	fi
	echo "e2e: the test VM hung; control: the same pass on $dev"
	run_vm "$plan"
	ctl=failed ctl_why="the control on $dev failed too"
	if [ "$VM_HUNG" = 0 ] && grep -q "^ok .* control: $pat" "$RES/vm/e2e.tap" 2>/dev/null; then
		ctl=passed
	fi
}
hung_in=
tapsrc=$RES/vm	# the test VM whose items count
if [ "$VM_HUNG" = 1 ] && case $PLAN in check|check-kvm|check-user|check-late|check-firmware|check-seabios|check-ovmf|check-config|check-smp|check-slow|check-ns|check-migrate|check-cpr|check-live) true ;; *) false ;; esac; then
	hung_in=$(grep -ao '^e2e: \[[a-z0-9-]*\]' "$RES/vm/guest.log" 2>/dev/null |
		  tail -n1 | sed 's/^e2e: \[\(.*\)\]$/\1/')
fi
# The passes at the end of the check plan (SeaBIOS, the driver
# configuration, the slow backend, the namespaces) run after the full
# vhost-nvme pass ran to the end in the same VM: a freeze of the whole test
# VM there is the nested KVM's (a device bug hangs the nested guest, which
# guest-e2e.sh's watchdog catches in a living test VM, with its control).
# Their items are a SKIP; what ran before stays.
late_hang=0
case $hung_in in
kvm-config*|kvm-smp*|kvm-slow*|kvm-ns*|seabios|ovmf) [ "$VM_HUNG" = 1 ] && late_hang=1 ;;
esac
if [ $late_hang = 1 ]; then
	vm_note="the test VM froze in the nested KVM boot [$hung_in], after the passes before it ran to the end"
	tap "not ok" "test VM with nested KVM guests ran to the end # SKIP infrastructure: $vm_note"
elif [ "$VM_HUNG" = 1 ] && case $PLAN in check-migrate|check-cpr|check-live) true ;; *) false ;; esac; then
	# The test VM froze while a nested KVM guest was migrated. On nvme or
	# vhost-nvme the same pass on virtio-blk decides, in a test VM of its
	# own; on virtio-blk (the control itself) it is an infrastructure SKIP.
	if [ "$hung_in" = mig-control ] || [ "${E2E_MIG_DEVICE:-vhost-nvme}" = virtio-blk ]; then
		vm_note="the test VM froze in the migration pass [$hung_in], device ${E2E_MIG_DEVICE:-vhost-nvme}"
		tap "not ok" "test VM with the migrated nested guest ran to the end # SKIP infrastructure: $vm_note"
	else
		hung_control "control-${PLAN#check-}" virtio-blk '.*ran to the end'
		keep_attempt control
		tapsrc=$RES/vm-hung	# what ran before the freeze stands
		if [ $ctl = passed ]; then
			tap "not ok" "test VM with the migrated nested guest ran to the end: it hung, while the control on virtio-blk did not (see $RES/vm-hung)"
		else
			vm_note="the test VM hung in the migration pass on ${E2E_MIG_DEVICE:-vhost-nvme}; $ctl_why"
			tap "not ok" "test VM with the migrated nested guest ran to the end # SKIP infrastructure: $vm_note (see $RES/vm-hung, $RES/vm-control)"
		fi
	fi
	late_hang=1	# said
elif [ "$VM_HUNG" = 1 ] && [ "$PLAN" = check-kvm ] && [ "$hung_in" = kvm-control ]; then
	# The pass on vhost-nvme failed, and its control on -device nvme (in
	# the same VM, guest-e2e.sh's control_l2) froze the test VM: no verdict.
	vm_note="the test VM froze in the control boot on -device nvme, after the boot on vhost-nvme failed"
	tap "not ok" "nested guest under KVM ran to the end # SKIP infrastructure: $vm_note"
	late_hang=1	# said
elif [ "$VM_HUNG" = 1 ] && [ "$PLAN" = check-kvm ]; then
	# The test VM froze in the boot on vhost-nvme: the control decides, in
	# a test VM of its own, as for the check plan.
	hung_control
	keep_attempt control	# its items are not this plan's
	tapsrc=$RES/vm-hung	# what ran before the freeze stands
	if [ $ctl = passed ]; then
		tap "not ok" "nested guest under KVM ran to the end: the test VM hung, while the control on -device nvme did not (see $RES/vm-hung)"
	else
		vm_note="the test VM hung with a nested KVM guest on vhost-nvme; $ctl_why"
		tap "not ok" "nested guest under KVM ran to the end # SKIP infrastructure: $vm_note (see $RES/vm-hung, $RES/vm-control)"
	fi
	late_hang=1	# said
elif [ "$VM_HUNG" = 1 ] && [ "$PLAN" = check ] && [ "$hung_in" = kvm-hwnvme ]; then
	keep_attempt hung
	echo "e2e: the test VM hung while the nested guest ran on -device nvme; the tests run again without nested KVM"
	run_vm check-nokvm
	vm_note="the test VM hung while a nested KVM guest ran on QEMU's -device nvme, after the pass on vhost-nvme ran to the end"
	tap "not ok" "test VM with nested KVM guests ran to the end # SKIP infrastructure: $vm_note (see $RES/vm-hung)"
elif [ "$VM_HUNG" = 1 ] && [ "$PLAN" = check ]; then
	hung_control
	keep_attempt control
	echo "e2e: control $ctl; the tests run again without nested KVM (logs of the hung VM in $RES/vm-hung)"
	run_vm check-nokvm
	if [ $ctl = passed ]; then
		tap "not ok" "test VM with a nested KVM guest on vhost-nvme ran to the end: it hung, while the control on -device nvme did not (see $RES/vm-hung)"
	else
		vm_note="the test VM hung with a nested KVM guest on vhost-nvme; $ctl_why"
		tap "not ok" "test VM with a nested KVM guest ran to the end # SKIP infrastructure: $vm_note (see $RES/vm-hung, $RES/vm-control)"
	fi
fi
echo "e2e: test VM done in $(( $(date +%s) - t0 ))s"
vrc=0
[ -f "$RES/vm/status" ] && [ "$(cat "$RES/vm/status")" = 0 ] || vrc=1

if [ -f "$tapsrc/e2e.tap" ]; then
	while IFS= read -r line; do
		[[ $line =~ ^(not\ )?ok\ [0-9]+\ -\ (.*)$ ]] || continue
		if [ -n "${BASH_REMATCH[1]}" ]; then
			tap "not ok" "${BASH_REMATCH[2]}"
		else
			tap ok "${BASH_REMATCH[2]}"
		fi
	done < "$tapsrc/e2e.tap"
fi
if [ $late_hang = 1 ]; then
	:	# said above
elif [ ! -f "$RES/vm/status" ]; then
	tap "not ok" "test VM ran guest-e2e.sh to the end (see $RES/vm/console.log)"
elif [ -s "$RES/vm/warnings.txt" ]; then
	tap "not ok" "no kernel warnings in the test VM (see $RES/vm/warnings.txt)"
else
	tap ok "no kernel warnings in the test VM"
fi
if [ $late_hang = 0 ] && [ "$(cat "$RES/vm/status" 2>/dev/null)" != 0 ] && [ "$FAIL" -eq 0 ]; then
	tap "not ok" "guest-e2e.sh exit status $(cat "$RES/vm/status" 2>/dev/null || echo none)"
fi
if [ "$PLAN" = bench ]; then
	echo "e2e: nested guest under KVM in the test VM (--smp 1), null_blk backend, fio 4k; baselines: QEMU's nvme (ioeventfd=on) and virtio-blk, cache=none,aio=native:"
	sed 's/^/  /' "$RES/vm/bench.txt" 2>/dev/null || true
fi
[ "$vrc" = 0 ] || true
finish
