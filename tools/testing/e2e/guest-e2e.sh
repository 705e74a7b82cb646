#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Test-VM (L1) side of the end-to-end tests; run by e2e.sh through
# vm-run.sh. Loads vhost_nvme.ko and null_blk, then boots a nested (L2)
# Linux guest with the QEMU built by tools/qemu/build-qemu.sh and
# `-device vhost-nvme,backend=/dev/nullb0`; the guest runs l2-tests.sh and
# prints its results on the serial console, which this script turns into
# TAP lines in $VM_OUT/e2e.tap. After the guest powers off, the backend is
# checked against what the guest wrote.
#
# Usage: guest-e2e.sh QEMU KERNEL L2_INITRD PLAN [L2_INITRD_MIN [KO MODULES_DIR]]
#   KO, MODULES_DIR: the test VM runs another kernel than Debian 12's:
#               vhost_nvme.ko built for it and its modules directory.
#   PLAN check: user-error checks, a full pass under KVM and a short pass
#               under nested TCG;
#        check-nokvm: the same without nested KVM (the full pass under
#               nested TCG: e2e.sh's plan after the test VM hung);
#        check-kvm: only the full pass under KVM and, if it crashes or
#               hangs, its control on -device nvme (a negative control's
#               lane: no user-error checks, no fallback, no TCG pass);
#        control-kvm: only the full pass under KVM, on QEMU's own
#               -device nvme (e2e.sh's control after the test VM hung);
#        check-late: only the late passes under KVM: SeaBIOS's and
#               OVMF's boots, the Linux driver configuration, the slow
#               backend and the namespaces;
#        check-seabios, check-ovmf, check-config, check-smp, check-slow,
#               check-ns: only that one late pass; check-firmware: SeaBIOS and OVMF
#               (negative controls' lanes); check-user: only the
#               user-error checks;
#        check-migrate: only the live-migration pass: the nested guest
#               under KVM migrated back and forth between QEMUs under fio
#               (migrate_pass; its parameters, E2E_MIG_*, in
#               $VM_OUT/params.sh, which e2e.sh writes from its
#               environment); control-migrate: the same on virtio-blk
#               (e2e.sh's control after the test VM hung);
#        check-cpr, control-cpr: the same with live updates (cpr-transfer:
#               each migration to a new QEMU that takes the module's
#               device over) instead of migrations;
#        check-live, control-live: both passes, each with its variant
#               pass (make check);
#        bench: the nested guest under KVM runs fio and prints IOPS.
# Every nested guest has a timeout and a console watchdog. Nothing is
# retried: when a nested guest on -device vhost-nvme crashes or hangs, the
# same boot on QEMU's own -device nvme (same backend, accelerator and
# tests) is the control. If the control fails too, the failure is the
# infrastructure's (KVM in TCG) and the item is a SKIP with both reasons;
# if the control runs to the end, the failure is the device's.
set -uo pipefail
: "${VM_OUT:?run this through tools/testing/e2e/e2e.sh}"
# shellcheck source=../vm/guest-lib.sh
. tools/testing/vm/guest-lib.sh

QEMU=$1 KERNEL=$2 INITRD=$3 PLAN=${4:-check}
INITRD_MIN=${5:-$INITRD}	# for the short nested TCG pass
L1_KO=${6:-} L1_MODDIR=${7:-}
TAP=$VM_OUT/e2e.tap
: > "$TAP"
# E2E_MIG_* from e2e.sh's environment (the migration pass's parameters)
if [ -f "$VM_OUT/params.sh" ]; then
	# shellcheck disable=SC1091
	. "$VM_OUT/params.sh"
fi
N=0
SERIAL=vn-e2e-0001
# shellcheck source=l2-run.sh
. tools/testing/e2e/l2-run.sh

log() { echo "e2e: $*"; }
tap() {	# tap ok|"not ok" DESCRIPTION
	N=$((N + 1))
	echo "$1 $N - $2" >> "$TAP"
	echo "e2e: $1 $N - $2"
}
failed() {	# a "not ok" item that is not a SKIP
	grep '^not ok' "$TAP" | grep -qv '# SKIP'
}
check() {	# check DESCRIPTION CMD...
	local d=$1
	shift
	if "$@"; then tap ok "$d"; else tap "not ok" "$d"; fi
}

# --- user mistakes: QEMU must refuse them with a clear message --------------------
# Under TCG, as x-allow-tcg=on allows, unless the options say x-allow-tcg=off.
refuses() {	# refuses PATTERN [setpriv ARGS --] DEVICE-OPTIONS
	local pat=$1 out rc pre=() dev
	shift
	if [ "$1" = setpriv ]; then
		while [ "$1" != -- ]; do pre+=("$1"); shift; done
		shift
	fi
	dev="vhost-nvme,x-allow-tcg=on,$1"
	[[ $1 == *x-allow-tcg=* ]] && dev="vhost-nvme,$1"
	shift
	qemu_refuses "$pat" "${pre[@]}" -- -device "$dev" "$@"
}
# ioeventfd_budget: 257 queue pairs, the module allowing 300 for the
# while: two ioeventfds each would pass KVM's 1000 with another device
ioeventfd_budget() {
	local p=/sys/module/vhost_nvme/parameters/max_io_queues old rc
	old=$(cat $p) || return 1
	echo 300 > $p || return 1
	refuses "ioeventfds; KVM has 1000" backend=/dev/nullb0,serial=x,max_ioqpairs=257
	rc=$?
	echo "$old" > $p
	return $rc
}
qemu_refuses() {	# qemu_refuses PATTERN [PREFIX...] -- QEMU-OPTIONS...
	local pat=$1 out rc pre=()
	shift
	while [ "$1" != -- ]; do pre+=("$1"); shift; done
	shift
	out=$(timeout -k 5 60 "${pre[@]}" "$QEMU" -machine pc -accel tcg -nodefaults \
		-display none "${FW[@]}" -S "$@" </dev/null 2>&1)
	rc=$?
	echo "$out" | sed 's/^/    /' | head -n 3
	[ $rc -ne 0 ] && [ $rc -lt 124 ] && echo "$out" | grep -q -- "$pat"
}
# qemu_starts QEMU-OPTIONS...: QEMU realizes them and quits when told
qemu_starts() {
	local out
	out=$(echo quit | timeout -k 5 60 "$QEMU" -machine pc -accel tcg -nodefaults \
		-display none "${FW[@]}" -S -monitor stdio "$@" 2>&1)
	local rc=$?
	[ $rc = 0 ] || echo "$out" | sed 's/^/    /' | head -n 3
	[ $rc = 0 ]
}

# A management layer opens /dev/vhost-nvme and the backend itself and
# passes them: vhostfd=N and backend=/dev/fdset/N (-add-fd).
parent_fds() {
	local vfd bfd rc
	exec {vfd}<>/dev/vhost-nvme {bfd}<>/dev/nullb0 || return 1
	qemu_starts -add-fd "fd=$bfd,set=7" \
		-device "vhost-nvme,x-allow-tcg=on,vhostfd=$vfd,backend=/dev/fdset/7,serial=x"
	rc=$?
	exec {vfd}>&- {bfd}>&-
	return $rc
}

# A QEMU holds the backend (its BlockBackend's OFD lock, seen in
# /proc/locks); a second one must be refused.
second_user() {
	local pid rc=1 i
	"$QEMU" -machine pc -accel tcg -nodefaults -display none "${FW[@]}" -S \
		-device vhost-nvme,x-allow-tcg=on,backend=/dev/nullb0,serial=first \
		</dev/null > /dev/null 2>&1 &
	pid=$!
	for i in $(seq 60); do
		grep -q OFDLCK /proc/locks && break
		sleep 0.5
	done
	if grep -q OFDLCK /proc/locks; then
		refuses 'lock' backend=/dev/nullb0,serial=second
		rc=$?
	else
		log "the first QEMU took no lock on the backend"
	fi
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return $rc
}

log "QEMU $QEMU"
[ -x "$QEMU" ] || { tap "not ok" "QEMU with -device vhost-nvme built"; exit 1; }
USER_CHECKS=1
LATE_ONLY=0	# a plan of late passes only (see late below)
case $PLAN in check-late|check-firmware|check-seabios|check-ovmf|check-config|check-smp|check-slow|check-ns|check-migrate|control-migrate|check-cpr|control-cpr|check-live|control-live) LATE_ONLY=1 ;; esac
case $PLAN in bench|control-kvm|check-kvm) USER_CHECKS=0 ;; esac
[ $LATE_ONLY = 1 ] && USER_CHECKS=0
# check-user: the user-error checks alone, no nested guest
[ "$PLAN" = check-user ] && LATE_ONLY=1
if [ $USER_CHECKS = 1 ]; then
	check "without the module: QEMU refuses (is the module loaded?)" \
		refuses "module loaded" backend=/dev/null
fi

log "loading vhost_nvme.ko, null_blk, kvm_amd"
if [ -n "$L1_KO" ]; then
	# vn_use_kernel's own TAP lines go to a file of their own.
	if TAP=$VM_OUT/e2e-kernel.tap vn_use_kernel "$L1_KO" "$L1_MODDIR"; then
		tap ok "vhost_nvme.ko and the modules of $(uname -r)"
	else
		tap "not ok" "vhost_nvme.ko and the modules of $(uname -r) (see e2e-kernel.tap)"
		exit 1
	fi
fi
if ! vn_load_module; then
	tap "not ok" "vhost_nvme.ko loads"
	exit 1
fi
modprobe null_blk nr_devices=2 memory_backed=1 gb=1 bs=512 || true
# vgif=0: KVM then does not use the virtual GIF that TCG emulates; with it
# the test VM lost interrupts (a halted vCPU never woke up) while the
# nested guest ran I/O.
modprobe kvm_amd vgif=0 2>/dev/null || modprobe kvm_intel 2>/dev/null || true
log "kvm_amd vgif=$(cat /sys/module/kvm_amd/parameters/vgif 2>/dev/null || echo -)"
[ -b /dev/nullb0 ] || { tap "not ok" "null_blk backend /dev/nullb0"; exit 1; }
NSZE=$(cat /sys/block/nullb0/size)	# 512-byte sectors = LBAs (bs=512)
KVM=0
[ -c /dev/kvm ] && KVM=1
log "backend /dev/nullb0: $NSZE LBAs; /dev/kvm: $KVM"

if [ $USER_CHECKS = 1 ]; then
	check "backend missing: QEMU refuses" refuses "does not exist" backend=/nonexistent
	check "backend neither block device nor file: QEMU refuses" \
		refuses "neither a block device nor a regular file" backend=/dev/null
	check "a controller without backend= starts (its namespaces are devices)" \
		qemu_starts -device vhost-nvme,x-allow-tcg=on,serial=x
	check "an nvme-ns on -device vhost-nvme: QEMU refuses" \
		qemu_refuses "vhost-nvme-ns devices" -- -device vhost-nvme,x-allow-tcg=on,id=vn,serial=x \
		-drive if=none,id=d1,file=/dev/nullb1,format=raw -device nvme-ns,bus=vn,drive=d1
	check "a vhost-nvme-ns on -device nvme: QEMU refuses" \
		qemu_refuses "namespace of a vhost-nvme controller" -- -device nvme,id=c,serial=x \
		-device vhost-nvme-ns,bus=c,backend=/dev/nullb1
	check "a vhost-nvme-ns without backend=: QEMU refuses" \
		qemu_refuses "backend=PATH" -- -device vhost-nvme,x-allow-tcg=on,id=vn,serial=x \
		-device vhost-nvme-ns,bus=vn
	check "a vhost-nvme-ns with the nsid of backend=: QEMU refuses" \
		qemu_refuses "already allocated" -- \
		-device vhost-nvme,x-allow-tcg=on,id=vn,serial=x,backend=/dev/nullb0 \
		-device vhost-nvme-ns,bus=vn,backend=/dev/nullb1,nsid=1
	check "a vhost-nvme-ns with metadata (ms=8): QEMU refuses" \
		qemu_refuses "not offloaded" -- -device vhost-nvme,x-allow-tcg=on,id=vn,serial=x \
		-device vhost-nvme-ns,bus=vn,backend=/dev/nullb1,ms=8
	check "no serial: QEMU refuses" refuses "serial" backend=/dev/nullb0
	check "a guest IOMMU (virtio-iommu): QEMU refuses" \
		qemu_refuses "guest IOMMU" -- -device virtio-iommu-pci \
		-device vhost-nvme,x-allow-tcg=on,backend=/dev/nullb0,serial=x
	check "/dev/vhost-nvme and the backend opened by the parent (vhostfd=, -add-fd): QEMU starts" \
		parent_fds
	check "under TCG without x-allow-tcg=on: QEMU refuses" \
		refuses "needs KVM" backend=/dev/nullb0,serial=x,x-allow-tcg=off
	check "CMB (not offloaded): QEMU refuses" \
		refuses "not offloaded" backend=/dev/nullb0,serial=x,cmb_size_mb=4
	check "a second QEMU on the same backend: refused (image locking)" second_user
	check "mdts beyond the module's: QEMU refuses" \
		refuses "the module allows" backend=/dev/nullb0,serial=x,mdts=9
	check "workers beyond the module's: QEMU refuses" \
		refuses "the module allows" backend=/dev/nullb0,serial=x,workers=99
	check "poll-us beyond the module's: QEMU refuses" \
		refuses "the module allows" backend=/dev/nullb0,serial=x,poll-us=100000000
	check "max_ioqpairs beyond KVM's ioeventfds (the module allowing more): QEMU refuses" \
		ioeventfd_budget
	check "no permission on /dev/vhost-nvme: QEMU refuses" \
		refuses "no permission" setpriv --reuid=65534 --regid=65534 --clear-groups -- \
		backend=/dev/nullb0
fi

# The nested guest's disk (bench mode also boots the baselines); the trace
# events tell how the interrupts and doorbells went.
L2_DEVICE=(-device "vhost-nvme,backend=/dev/nullb0,serial=$SERIAL" -trace 'vhost_nvme_*')
L2_APPEND=

# control_l2 NAME ACCEL MODE TIMEOUT IDLE: the boot that just failed, on
# QEMU's own NVMe controller instead; sets CTL_STATUS and CTL_REASON and
# leaves L2_* as the failed boot set them.
control_l2() {
	local dev=("${L2_DEVICE[@]}") con=${L2_CON:-} st=${L2_STATUS:-} why=${L2_REASON:-}
	L2_DEVICE=(-drive "file=/dev/nullb0,if=none,id=c0,format=raw,cache=none,aio=native"
		   -device "nvme,drive=c0,serial=$SERIAL")
	log "[$1] control: the same boot on QEMU's -device nvme"
	run_l2 "$@"
	CTL_STATUS=$L2_STATUS CTL_REASON=${L2_REASON:-QEMU refused -device nvme}
	L2_DEVICE=("${dev[@]}") L2_CON=$con L2_STATUS=$st L2_REASON=$why
}

if [ "$PLAN" = control-kvm ]; then
	[ $KVM = 1 ] || { tap "not ok" "control: no /dev/kvm in the test VM"; exit 1; }
	control_l2 kvm-control kvm full 480 150
	if [ "$CTL_STATUS" = done ]; then
		tap ok "control: nested guest on -device nvme under KVM ran to the end"
	else
		tap "not ok" "control: nested guest on -device nvme under KVM ran to the end: $CTL_REASON"
	fi
	exit 0
fi

# collect PREFIX: TAP lines of the last nested run, and the backend checks
# irq_counts: "GUEST MAINLOOP CQS" of the last nested run: the interrupts
# the guest took on its I/O queues' vectors, those QEMU's main-loop handler
# raised for them, and how many I/O CQs QEMU reported on (at their
# deletion, when the guest shuts the controller down).
irq_counts() {
	local err=${L2_CON%.console}.stderr io
	io=$(grep -a '^E2E-IRQS ' "$L2_CON" | tr -d '\r' | tail -n1 |
	     sed -n 's/.*io=\([0-9]*\).*/\1/p')
	sed -n 's/.*CQ [0-9]*: \([0-9]*\) interrupts raised by the main-loop handler.*/\1/p' "$err" |
		awk -v io="${io:-0}" '{ s += $1; n++ } END { print io, s + 0, n + 0 }'
}

# The guest took interrupts on its I/O queues, QEMU reported on its CQs,
# and its main loop raised none of them: KVM did, from the irqfds.
irqs_by_irqfd() {	# irqs_by_irqfd GUEST MAINLOOP CQS
	[ "$1" -gt 0 ] && [ "$3" -gt 0 ] && [ "$2" = 0 ]
}

# The guest took interrupts, the main loop raised some, no irqfd was set up.
irqs_by_main_loop() {	# irqs_by_main_loop GUEST MAINLOOP QEMU-STDERR
	[ "$1" -gt 0 ] && [ "$2" -gt 0 ] && ! grep -q 'via KVM irqfd' "$3"
}

# workers_share STDERR N: the device started N workers and each served
# commands (its vhost_nvme_sq_commands trace events, at queue deletion).
workers_share() {
	local err=$1 n=$2
	grep -q "vhost_nvme_workers $n worker threads" "$err" || return 1
	sed -n 's/.*vhost_nvme_sq_commands SQ [0-9]* (CQ [0-9]*, worker \([0-9]*\)): \([0-9]*\) commands.*/\1 \2/p' "$err" |
		awk -v n="$n" '{ c[$1] += $2 } END {
			for (w = 0; w < n; w++) {
				printf "    worker %d: %d commands\n", w, c[w]
				if (c[w] == 0) bad = 1
			}
			exit bad }'
}

collect() {	# collect PREFIX [KEEP [noraw]]: KEEP, an ERE, keeps only the items it
	# matches; noraw: the pass wrote no raw data to check
	local pfx=$1 keep=${2:-} raw=${3:-raw} line res desc off mb sum got
	while IFS= read -r line; do
		line=${line%$'\r'}
		res=${line#E2E-TAP }
		desc=${res#*- }
		if [ -n "$keep" ] && ! [[ $desc =~ $keep ]]; then
			log "$pfx not this device's item: $res"
			continue
		fi
		case $res in
		"ok -"*) tap ok "$pfx $desc" ;;
		"not ok -"*) tap "not ok" "$pfx $desc" ;;
		esac
	done < <(grep -a '^E2E-TAP ' "$L2_CON")
	if grep -aqE '(WARNING:|BUG:|Oops|Call Trace|soft lockup|hung_task|blocked for more than)' "$L2_CON"; then
		grep -aE '(WARNING:|BUG:|Oops|Call Trace|soft lockup|hung_task|blocked for more than)' "$L2_CON" |
			head -n 10 | sed 's/^/    /'
		tap "not ok" "$pfx no kernel warnings in the nested guest"
	else
		tap ok "$pfx no kernel warnings in the nested guest"
	fi

	# After power-off the backend must hold what the guest wrote.
	read -r _ off mb sum < <(grep -a '^E2E-RAW ' "$L2_CON" | tr -d '\r' | tail -n1) || true
	if [ "$raw" = noraw ]; then
		:
	elif [ -n "${sum:-}" ]; then
		got=$(dd if=/dev/nullb0 bs=1M skip="$off" count="$mb" iflag=direct 2>/dev/null |
		      sha256sum | cut -d' ' -f1)
		check "$pfx after power-off the backend holds the ${mb} MiB the guest wrote" \
			[ "$got" = "$sum" ]
	else
		tap "not ok" "$pfx after power-off the backend holds the data the guest wrote (no E2E-RAW)"
	fi
	if grep -aq '^E2E-FILE ' "$L2_CON"; then
		grep -a '^E2E-FILE ' "$L2_CON" | tr -d '\r' | sed 's/^E2E-FILE //' > /tmp/e2e-sums
		mkdir -p /tmp/e2e-mnt
		modprobe ext4 2>/dev/null
		if mount -t ext4 -o ro /dev/nullb0 /tmp/e2e-mnt 2>/dev/null; then
			check "$pfx after power-off the backend's ext4 holds the guest's files" \
				bash -c "cd /tmp/e2e-mnt && sha256sum --quiet -c /tmp/e2e-sums"
			umount /tmp/e2e-mnt
		else
			tap "not ok" "$pfx after power-off the backend's ext4 mounts in the test VM"
		fi
	fi
}

if [ "$PLAN" = bench ]; then
	[ $KVM = 1 ] || { log "no /dev/kvm in the test VM"; exit 1; }
	brc=0
	# -device vhost-nvme, then the baselines on the same backend: QEMU's
	# own NVMe controller (ioeventfd=on) and virtio-blk, both with
	# cache=none,aio=native.
	drv="file=/dev/nullb0,if=none,id=d0,format=raw,cache=none,aio=native"
	for b in vhost-nvme nvme virtio-blk; do
		case $b in
		vhost-nvme) L2_DEVICE=(-device "vhost-nvme,backend=/dev/nullb0,serial=$SERIAL")
			    L2_APPEND= ;;
		nvme) L2_DEVICE=(-drive "$drv" -device "nvme,drive=d0,serial=$SERIAL,ioeventfd=on")
		      L2_APPEND= ;;
		virtio-blk) L2_DEVICE=(-drive "$drv" -device "virtio-blk-pci,drive=d0")
			    L2_APPEND=e2e.dev=/dev/vda ;;
		esac
		run_l2 "bench-$b" kvm bench 300 120
		grep -a '^E2E-BENCH' "$L2_CON" | tr -d '\r' |
			sed "s/^E2E-BENCH /nested guest, $b: /" | tee -a "$VM_OUT/bench.txt"
		if [ "$L2_STATUS" != "done" ] || grep -aq '^E2E-TAP not ok' "$L2_CON"; then
			log "[bench-$b] failed"
			[ $b = vhost-nvme ] && brc=1
		fi
	done
	exit $brc
fi

# Full pass under KVM; on a crash or hang, the control decides. Two
# workers, and the nvme driver with a write queue, a poll queue and SGLs
# for every transfer (l2-tests.sh checks the 1/1/1 split).
L2_DEVICE=("${L2_DEVICE[@]/#vhost-nvme,/vhost-nvme,workers=2,}")
L2_APPEND="nvme.write_queues=1 nvme.poll_queues=1 nvme.sgl_threshold=1 e2e.queues=1/1/1"
if [ $LATE_ONLY = 1 ]; then
	L2_STATUS=skip
elif [ "$PLAN" = check-nokvm ]; then
	L2_STATUS=infra L2_REASON="the test VM hung while a nested KVM guest ran (e2e.sh ran the control)"
elif [ $KVM = 1 ]; then
	run_l2 kvm kvm full 480 150
else
	L2_STATUS=infra L2_REASON="no /dev/kvm in the test VM"
fi
if [ "$L2_STATUS" = infra ] && { [ "$PLAN" = check ] || [ "$PLAN" = check-kvm ]; } &&
   [ $KVM = 1 ]; then
	control_l2 kvm-control kvm full 480 150
	if [ "$CTL_STATUS" = done ]; then
		L2_STATUS=failed
	else
		L2_REASON="$L2_REASON; the control on -device nvme failed too: $CTL_REASON"
	fi
fi
case $L2_STATUS in
done)
	collect "[kvm]"
	read -r g_irqs ml_irqs ncqs < <(irq_counts)
	check "[kvm] interrupts went through KVM irqfds: the guest took $g_irqs on its I/O queues, QEMU's main loop raised $ml_irqs of them ($ncqs CQs)" \
		irqs_by_irqfd "$g_irqs" "$ml_irqs" "$ncqs"
	check "[kvm] shadow doorbells (Doorbell Buffer Config) were used" \
		grep -q 'Doorbell Buffer Config' "${L2_CON%.console}.stderr"
	check "[kvm] each of the device's 2 workers served commands" \
		workers_share "${L2_CON%.console}.stderr" 2
	tap ok "nested guest under KVM ran to the end"
	;;
failed)
	tap "not ok" "nested guest under KVM ran to the end: $L2_REASON, while the control on -device nvme ran to the end"
	;;
error)
	tap "not ok" "nested guest under KVM: QEMU refused to start the device"
	;;
skip)
	;;
infra)
	if [ "$PLAN" = check-kvm ]; then
		tap "not ok" "nested guest under KVM ran to the end # SKIP infrastructure: ${L2_REASON}"
		vn_unload_module
		exit 0
	fi
	log "INFRA: nested KVM failed ($L2_REASON): the full pass runs under nested TCG"
	tap "not ok" "nested guest under KVM ran to the end # SKIP infrastructure: ${L2_REASON}; the full pass ran under nested TCG instead"
	run_l2 tcg-full tcg full 1800 400
	if [ "$L2_STATUS" = "done" ]; then
		collect "[tcg-full]"
	else
		tap "not ok" "nested guest under TCG (fallback) ran to the end: ${L2_REASON:-QEMU refused}"
	fi
	;;
esac

L2_DEVICE=(-device "vhost-nvme,backend=/dev/nullb0,serial=$SERIAL" -trace 'vhost_nvme_*')
L2_APPEND=
if [ "$PLAN" = check-kvm ]; then
	vn_unload_module || log "rmmod vhost_nvme failed"
	failed && exit 1
	exit 0
fi


# hw/nvme as tools/qemu/patches leaves it (with the I/O-queue offload
# hooks) still serves QEMU's own controller: the short pass (fio verify,
# raw data, kernel log) on -device nvme with ioeventfd=on and shadow
# doorbells, under KVM. (The full pass's resets under fio froze the test
# VM once here; each nested KVM boot is a chance of that.) If it does not
# run to the end, the same short pass on vhost-nvme is the control.
if [ "$PLAN" = check ] && [ $KVM = 1 ]; then
	dev=("${L2_DEVICE[@]}")
	L2_DEVICE=(-drive "file=/dev/nullb0,if=none,id=h0,format=raw,cache=none,aio=native"
		   -device "nvme,drive=h0,serial=$SERIAL,ioeventfd=on"
		   -trace pci_nvme_dbbuf_config)
	run_l2 kvm-hwnvme kvm tcg 300 150
	L2_DEVICE=("${dev[@]}")
	pfx="[kvm, -device nvme]"
	if [ "$L2_STATUS" = done ]; then
		collect "$pfx" '(appears|smart-log|fio verify|raw [0-9]+ MiB|kernel log)'
		check "$pfx shadow doorbells were used" \
			grep -q 'pci_nvme_dbbuf_config' "${L2_CON%.console}.stderr"
		tap ok "$pfx hw/nvme with the offload hooks: nested guest under KVM ran to the end"
	else
		why=${L2_REASON:-QEMU refused -device nvme}
		log "$pfx failed ($why): control, the vhost-nvme boot again"
		run_l2 kvm-hwnvme-control kvm tcg 300 150
		if [ "$L2_STATUS" = done ]; then
			tap "not ok" "$pfx hw/nvme with the offload hooks: nested guest under KVM ran to the end: $why, while the same boot on vhost-nvme did"
		else
			tap "not ok" "$pfx hw/nvme with the offload hooks: nested guest under KVM ran to the end # SKIP infrastructure: $why; the vhost-nvme boot failed too: ${L2_REASON:-}"
		fi
	fi
fi

# The rest of the passes are nested KVM boots too (each one a chance of the
# TCG test VM freezing, see e2e.sh): last, so that the passes above are not
# lost when it does.
if [ $LATE_ONLY = 0 ]; then
# A short pass without KVM: interrupts through the main-loop eventfd handler,
# doorbells through QEMU-dispatched ioeventfds. Nested TCG does not have
# KVM's flakiness: a failure here is a failure, control or not; the control
# only tells the reader whether QEMU's own device fails the same way.
run_l2 tcg tcg tcg 1200 400
if [ "$L2_STATUS" = "done" ]; then
	collect "[tcg]"
	read -r g_irqs ml_irqs ncqs < <(irq_counts)
	check "[tcg] interrupts went through the main-loop eventfd handler, no irqfd: the guest took $g_irqs on its I/O queues, the main loop raised $ml_irqs ($ncqs CQs)" \
		irqs_by_main_loop "$g_irqs" "$ml_irqs" "${L2_CON%.console}.stderr"
	tap ok "nested guest under TCG ran to the end"
else
	why=${L2_REASON:-QEMU refused}
	if [ "$L2_STATUS" = infra ]; then
		control_l2 tcg-control tcg tcg 1200 400
		why+="; the control on -device nvme: ${CTL_STATUS/done/ran to the end}"
		[ "$CTL_STATUS" = done ] || why+=" ($CTL_REASON)"
	fi
	tap "not ok" "nested guest under TCG ran to the end: $why"
fi
fi

# kvm_pass PFX NAME MODE TIMEOUT IDLE ITEMS [CONTROL]: a late pass, the
# nested guest under KVM on L2_DEVICE (run_l2 NAME kvm MODE TIMEOUT IDLE).
# Ran to the end: ITEMS (a function) adds the pass's items, then it passes.
# QEMU refused the device: a FAIL. A crash or hang: the same boot on QEMU's
# own -device nvme decides (CONTROL, a function that sets L2_DEVICE for it;
# default control_l2's): a FAIL if it ran to the end, else a SKIP.
kvm_pass() {
	local pfx=$1 name=$2 mode=$3 tmo=$4 idle=$5 items=$6 ctl=${7:-} why
	run_l2 "$name" kvm "$mode" "$tmo" "$idle"
	case $L2_STATUS in
	done)
		"$items"
		tap ok "$pfx nested guest under KVM ran to the end"
		;;
	error)
		tap "not ok" "$pfx nested guest under KVM: QEMU refused to start the device"
		;;
	*)
		why=${L2_REASON:-}
		if [ -n "$ctl" ]; then
			"$ctl"
			log "[$name] control: the same boot on QEMU's -device nvme"
			run_l2 "$name-control" kvm "$mode" "$tmo" "$idle"
			CTL_STATUS=$L2_STATUS CTL_REASON=${L2_REASON:-}
		else
			control_l2 "$name-control" kvm "$mode" "$tmo" "$idle"
		fi
		if [ "$CTL_STATUS" = done ]; then
			tap "not ok" "$pfx nested guest under KVM ran to the end: $why, while the control on -device nvme ran to the end"
		else
			tap "not ok" "$pfx nested guest under KVM ran to the end # SKIP infrastructure: $why; the control on -device nvme failed too: $CTL_REASON"
		fi
		;;
	esac
}

# config_pass ID DESCRIPTION WORKERS APPEND [VCPUS]: the nested guest
# under KVM with VCPUS vCPUs (default 1) and the nvme driver configured by
# APPEND (l2-tests.sh's config mode: fio verify, a job pinned to each
# vCPU), the device with WORKERS worker threads.
config_pass() {
	local name=$1 pfx="[kvm, $2]" workers=$3 dev=("${L2_DEVICE[@]}")
	L2_DEVICE=("${dev[@]/#vhost-nvme,/vhost-nvme,workers=$workers,}")
	L2_APPEND=$4 L2_SMP=${5:-1}
	kvm_pass "$pfx" "kvm-$name" config 480 150 config_items
	L2_DEVICE=("${dev[@]}") L2_APPEND= L2_SMP=1
}
config_items() {
	collect "$pfx"
	check "$pfx each of the device's $workers workers served commands" \
		workers_share "${L2_CON%.console}.stderr" "$workers"
}

# late PASS: the late pass PASS (seabios, ovmf, config, slow, ns), a
# nested boot each, runs in this plan: check and check-late run them all,
# check-PASS only PASS, check-firmware seabios and ovmf.
late() {
	[ $KVM = 1 ] || return 1
	case $PLAN in check|check-late|"check-$1") return 0 ;; esac
	[ "$PLAN" = check-firmware ] && { [ "$1" = seabios ] || [ "$1" = ovmf ]; }
}

# Firmware: SeaBIOS's own NVMe driver boots from the device. The backend
# is a file whose first sector is a boot sector that prints E2E-BOOT-OK on
# COM1 and then triple-faults (QEMU exits: -no-reboot); the message is in
# the sector, so it is printed only if SeaBIOS read it through the module.
# The control, on a hang or crash: the same boot on -device nvme.
bootsector() {	# bootsector FILE
	local code
	# xor ax,ax; mov ds,ax; mov si,0x7c20; mov dx,0x3f8
	# 1: lodsb; test al,al; jz 2f; out dx,al; jmp 1b
	# 2: lidt [0x7c1a] (limit 0); int3: shutdown; jmp $
	code='\x31\xc0\x8e\xd8\xbe\x20\x7c\xba\xf8\x03\xac\x84\xc0\x74\x03\xee\xeb\xf8'
	code+='\x0f\x01\x1e\x1a\x7c\xcc\xeb\xfe'
	code+='\x00\x00\x00\x00\x00\x00'		# 0x7c1a: an empty IDT
	code+='E2E-BOOT-OK\r\n\x00'			# 0x7c20
	truncate -s 0 "$1" && truncate -s 8M "$1" &&
	printf "$code" | dd of="$1" conv=notrunc status=none &&
	printf '\x55\xaa' | dd of="$1" bs=1 seek=510 conv=notrunc status=none
}
fw_boot() {	# fw_boot ACCEL LOG DEVICE-OPTIONS...: 0 if the boot sector ran
	local accel=$1 out=$2
	shift 2
	# A line for the test VM's console watchdog (240 s) before each boot,
	# which takes 2 minutes at most: firmware waiting on a broken device
	# prints nothing the watchdog sees.
	log "firmware boot ($accel): ${out##*/}"
	timeout -k 5 120 "$QEMU" -machine pc -accel "$accel" -cpu max -m 256M -smp 1 \
		-nodefaults -no-user-config -display none -no-reboot "${FW[@]}" \
		-serial "file:$out" "$@" </dev/null > "$out.stderr" 2>&1
	grep -aq "${FW_MARKER:-E2E-BOOT-OK}" "$out"
}
# fw_pass PFX ACCEL LOG WHAT IMAGE MARKER [QEMU-OPTIONS...]: firmware
# boots from IMAGE on -device vhost-nvme and prints MARKER (WHAT says what
# that shows); if it does not, the same boot on -device nvme tells a FAIL
# from a SKIP.
fw_pass() {
	local pfx=$1 accel=$2 blog=$3 what=$4 img=$5 marker=$6 tcg=
	shift 6
	[ "$accel" = tcg ] && tcg=,x-allow-tcg=on
	if FW_MARKER=$marker fw_boot "$accel" "$blog" "$@" \
			-device "vhost-nvme,backend=$img,serial=fw,bootindex=1$tcg" -trace 'vhost_nvme_*'; then
		tap ok "$pfx $what"
	elif FW_MARKER=$marker fw_boot "$accel" "$blog.control" "$@" \
			-drive "file=$img,if=none,id=b0,format=raw" \
			-device "nvme,drive=b0,serial=fw,bootindex=1"; then
		tail -n 5 "$blog" | sed 's/^/    /'
		tap "not ok" "$pfx $what, while the control on -device nvme did"
	else
		tap "not ok" "$pfx $what # SKIP infrastructure: neither it nor the control on -device nvme did"
	fi
}
if late seabios; then
	img=/tmp/e2e-boot.img
	blog=$VM_OUT/l2-seabios.console
	log "[seabios] booting the boot sector on vhost-nvme (kvm)"
	if ! bootsector "$img"; then
		tap "not ok" "[kvm, SeaBIOS] boot sector written"
	else
		fw_pass "[kvm, SeaBIOS]" kvm "$blog" \
			"SeaBIOS boots from -device vhost-nvme (file backend): the boot sector it read ran" \
			"$img" E2E-BOOT-OK
	fi
	rm -f "$img"
fi

# Firmware: OVMF's own NVMe driver (NvmExpressDxe) reads a FAT file system
# on the device: its UEFI shell runs startup.nsh from it, which prints
# E2E-OVMF-OK (the marker is in the file) and powers off. Under nested
# TCG (about 30 s): OVMF under KVM in the TCG test VM aborts the host's
# QEMU 7.2 (../shared/TESTBED.md), on -device nvme too.
esp_image() {	# esp_image FILE: a FAT file system holding startup.nsh
	rm -f "$1"
	truncate -s 16M "$1" && mformat -i "$1" :: &&
		printf 'echo E2E-OVMF-OK\r\nreset -s\r\n' > /tmp/startup.nsh &&
		mcopy -i "$1" /tmp/startup.nsh ::/
}
if late ovmf; then
	img=/tmp/e2e-esp.img
	blog=$VM_OUT/l2-ovmf.console
	log "[ovmf] booting OVMF's shell with startup.nsh on vhost-nvme (tcg)"
	if [ ! -r /usr/share/ovmf/OVMF.fd ] || ! esp_image "$img"; then
		tap "not ok" "[tcg, OVMF] OVMF and a FAT image with startup.nsh"
	else
		fw_pass "[tcg, OVMF]" tcg "$blog" \
			"OVMF's NVMe driver reads the device (file backend): its shell ran startup.nsh from it" \
			"$img" E2E-OVMF-OK -bios /usr/share/ovmf/OVMF.fd
	fi
	rm -f "$img"
fi

# A controller reset behind a slow backend: every I/O 2 s behind dm-delay;
# while the reset drains what is in flight, QEMU's monitor keeps answering
# (Delete I/O SQ and CC.EN 1 to 0 complete from the main loop when the
# module's drain is over, instead of blocking it); the same for a function
# level reset the guest writes with I/O in flight.
HMP_PORT=4555	# the nested QEMU's monitor, where a pass has one
# monitor_max_ms SECS LOG: "info status" round trips on QEMU's monitor, 100 ms
# apart, for SECS seconds; prints the longest in ms (10000 if one did not
# answer).  LOG gets each round's start (seconds, as the nested QEMU's
# -msg timestamp=on trace) and round trip.  A fixed time, not a number of
# rounds: the nested guest's next marker must find the timing over.
monitor_max_ms() {
	local secs=$1 log=$2 fd max=0 t0 t1 ms line r got done=0 end
	exec {fd}<>/dev/tcp/127.0.0.1/$HMP_PORT 2>/dev/null || { echo 10000; return; }
	end=$((${EPOCHREALTIME/./} + secs * 1000000))
	while [ "${EPOCHREALTIME/./}" -lt $end ]; do
		t0=${EPOCHREALTIME/./}
		printf 'info status\n' >&$fd 2>/dev/null
		got=0
		while :; do
			IFS= read -r -t 10 -u "$fd" line
			r=$?
			[ $r = 0 ] || break
			[[ $line == *"VM status"* ]] && { got=1; break; }
		done
		t1=${EPOCHREALTIME/./}
		# End of file: QEMU exited (the guest powered off) after the
		# rounds that answered; nothing to time.
		[ $got = 0 ] && [ $r = 1 ] && [ $done -gt 0 ] && break
		ms=$(( (t1 - t0) / 1000 ))
		[ $got = 1 ] || ms=10000
		echo "${t0:0:-6}.${t0: -6} $ms ms" >> "$log"
		[ $ms -gt $max ] && max=$ms
		[ $got = 1 ] || break
		done=$((done + 1))
		sleep 0.1
	done
	exec {fd}>&-
	echo $max
}
monitor_was_responsive() {	# monitor_was_responsive MS
	[ -n "$1" ] && [ "$1" -le 500 ]
}
# stopped_cq_check: stops the nested VM (16 I/Os of 2 s in flight), saves
# I/O CQ 1 (its address from the device's trace) twice, 3 s apart, and
# lets the VM run again; prints "unchanged" if the device wrote nothing to
# it while the VM was stopped.
stopped_cq_check() {
	local err=${L2_CON%.console}.stderr n= addr= fd
	read -r n addr < <(sed -n 's/.*vhost_nvme_create_cq CQ 1 created: \([0-9]*\) entries at \(0x[0-9a-f]*\).*/\1 \2/p' "$err" | tail -n1)
	if [ -z "$addr" ]; then
		echo "unknown (no CQ 1 in the device's trace)"
		return
	fi
	rm -f /tmp/vn-cq1.a /tmp/vn-cq1.b
	exec {fd}<>/dev/tcp/127.0.0.1/$HMP_PORT 2>/dev/null || { echo "unknown (no monitor)"; return; }
	{
		hmp_on $fd stop
		hmp_on $fd "pmemsave $addr $((n * 16)) \"/tmp/vn-cq1.a\""
		sleep 3
		hmp_on $fd "pmemsave $addr $((n * 16)) \"/tmp/vn-cq1.b\""
		hmp_on $fd cont
	} >> "$VM_OUT/l2-hmp.log"
	exec {fd}>&-
	if [ ! -s /tmp/vn-cq1.a ]; then
		echo "unknown (pmemsave wrote nothing)"
	elif cmp -s /tmp/vn-cq1.a /tmp/vn-cq1.b; then
		echo unchanged
	else
		echo changed
	fi
}
# hmp_on FD CMD: one command on the monitor connection FD; prints its
# answer once QEMU has carried it out (the "info status" after it answered)
hmp_on() {
	local line out=
	printf '%s\ninfo status\n' "$2" >&"$1"
	while IFS= read -r -t 20 -u "$1" line; do
		line=${line%$'\r'}
		[[ $line == *"VM status"* ]] && break
		[[ $line == *"(qemu)"* || -z $line ]] || out+="$line; "
	done
	echo "$2: $out"
}
# hmp CMD: one command on the nested QEMU's monitor; prints its answer
hmp() {
	local fd
	exec {fd}<>/dev/tcp/127.0.0.1/$HMP_PORT 2>/dev/null || { echo "no monitor"; return 1; }
	hmp_on $fd "$1"
	exec {fd}>&-
}
# What the nested guest's markers ask of the test VM (run_l2 calls it).
l2_on_line() {
	case $1 in
	E2E-SLOW-RESET*)
		SLOW_MAX_MS=$(monitor_max_ms 6 "$VM_OUT/l2-monitor-reset.log")
		log "monitor during the reset: longest round trip ${SLOW_MAX_MS} ms" ;;
	E2E-SLOW-FLR*)
		FLR_MAX_MS=$(monitor_max_ms 6 "$VM_OUT/l2-monitor-flr.log")
		log "monitor during the function level reset: longest round trip ${FLR_MAX_MS} ms" ;;
	E2E-SLOW-STOP*)
		STOP_VERDICT=$(stopped_cq_check)
		log "VM stopped for 3 s with I/O in flight: CQ 1 $STOP_VERDICT" ;;
	E2E-NS-ADD*)
		NS_ADD_OUT=$(hmp "$NS_ADD")
		log "monitor: $NS_ADD: $NS_ADD_OUT" ;;
	E2E-NS-DEL*)
		NS_DEL_OUT=$(hmp "$NS_DEL")
		log "monitor: $NS_DEL: $NS_DEL_OUT" ;;
	esac
}
slow_items() {
	collect "$pfx" '(appears|reset_controller|function level reset|kernel log)' noraw
	check "$pfx QEMU's monitor answered within 500 ms throughout the reset (longest: ${SLOW_MAX_MS:-none} ms)" \
		monitor_was_responsive "$SLOW_MAX_MS"
	check "$pfx QEMU's monitor answered within 500 ms throughout the function level reset (longest: ${FLR_MAX_MS:-none} ms)" \
		monitor_was_responsive "$FLR_MAX_MS"
	check "$pfx the function level reset waited for the module's drain outside the main loop" \
		grep -q 'vhost_nvme_flr_async' "${L2_CON%.console}.stderr"
	check "$pfx Delete I/O SQ completed asynchronously" \
		grep -q 'vhost_nvme_delete_sq_async' "${L2_CON%.console}.stderr"
	check "$pfx VM stopped with I/O in flight: the device wrote nothing to CQ 1 in 3 s (${STOP_VERDICT:-not checked})" \
		[ "$STOP_VERDICT" = unchanged ]
}
slow_pass() {
	local pfx="[kvm, slow backend]" dev=("${L2_DEVICE[@]}") sz
	sz=$(blockdev --getsz /dev/nullb0)
	modprobe dm-delay 2>/dev/null
	if ! { dmsetup create --noudevsync vn-slow --table "0 $sz delay /dev/nullb0 0 2000" &&
	       dmsetup mknodes vn-slow; }; then
		tap "not ok" "$pfx dm-delay over /dev/nullb0"
		return
	fi
	SLOW_MAX_MS= FLR_MAX_MS= STOP_VERDICT=
	L2_DEVICE=(-device "vhost-nvme,backend=/dev/mapper/vn-slow,serial=$SERIAL"
		   -trace 'vhost_nvme_*' -msg timestamp=on
		   -monitor "tcp:127.0.0.1:$HMP_PORT,server=on,wait=off")
	kvm_pass "$pfx" kvm-slow slow 300 150 slow_items
	L2_DEVICE=("${dev[@]}")
	dmsetup remove --noudevsync vn-slow 2>/dev/null
}
if late slow; then
	slow_pass
fi

# Namespaces: a second one on the controller's bus (vhost-nvme-ns), a third
# hot-plugged and unplugged through QEMU's monitor, the second detached and
# attached again by the guest (l2-tests.sh's ns mode). The control, on a
# crash or hang: the same boot on -device nvme with nvme-ns devices.
ns_devices() {	# ns_devices vhost-nvme|nvme: sets L2_DEVICE, NS_ADD, NS_DEL
	local mon=(-monitor "tcp:127.0.0.1:$HMP_PORT,server=on,wait=off")
	if [ "$1" = vhost-nvme ]; then
		L2_DEVICE=(-device "vhost-nvme,id=vn0,backend=/dev/nullb0,serial=$SERIAL"
			   -device vhost-nvme-ns,bus=vn0,backend=/dev/nullb1,nsid=2
			   -trace 'vhost_nvme_*' "${mon[@]}")
		NS_ADD="device_add vhost-nvme-ns,id=ns3,bus=vn0,backend=$NS3_IMG,nsid=3"
	else
		L2_DEVICE=(-drive "file=/dev/nullb0,if=none,id=c0,format=raw,cache=none,aio=native"
			   -device "nvme,id=vn0,drive=c0,serial=$SERIAL"
			   -drive "file=/dev/nullb1,if=none,id=c1,format=raw,cache=none,aio=native"
			   -device nvme-ns,bus=vn0,drive=c1,nsid=2
			   -drive "file=$NS3_IMG,if=none,id=c3,format=raw"
			   "${mon[@]}")
		NS_ADD="device_add nvme-ns,id=ns3,bus=vn0,drive=c3,nsid=3"
	fi
	NS_DEL="device_del ns3"
}
hmp_answered_ok() {	# hmp_answered_ok ANSWER...: each came, none an error
	local a
	for a in "$@"; do
		[ "$a" != unset ] && [[ $a != *rror* && $a != "no monitor" ]] || return 1
	done
}
backend_holds() {	# backend_holds DISK TAG: DISK has what E2E-TAG says
	local off mb sum got
	read -r _ off mb sum < <(grep -a "^E2E-$2 " "$L2_CON" | tr -d '\r' | tail -n1) || true
	[ -n "${sum:-}" ] || return 1
	got=$(dd if="$1" bs=1M skip="$off" count="$mb" iflag=direct 2>/dev/null |
	      sha256sum | cut -d' ' -f1)
	[ "$got" = "$sum" ]
}
ns_items() {
	collect "$pfx"
	check "$pfx after power-off /dev/nullb1 holds what the guest wrote to namespace 2" \
		backend_holds /dev/nullb1 RAW2
	check "$pfx device_add and device_del of a vhost-nvme-ns answered without an error" \
		hmp_answered_ok "${NS_ADD_OUT-unset}" "${NS_DEL_OUT-unset}"
}
ns_control() { ns_devices nvme; }
ns_pass() {
	local pfx="[kvm, namespaces]" dev=("${L2_DEVICE[@]}")
	NS3_IMG=/tmp/vn-ns3.img NS_ADD_OUT=unset NS_DEL_OUT=unset
	truncate -s 64M "$NS3_IMG"
	ns_devices vhost-nvme
	kvm_pass "$pfx" kvm-ns ns 300 150 ns_items ns_control
	L2_DEVICE=("${dev[@]}")
	rm -f "$NS3_IMG"
}
if late ns; then
	ns_pass
fi

# The Linux driver configuration the full pass does not use: no MSI-X
# (INTx), queues of two entries (one command in flight per queue). Last:
# pci=nomsi boots freeze the TCG test VM about every other time, on
# -device nvme as well (../shared/TESTBED.md), and what runs after a
# freeze is lost.
if late config; then
	config_pass config "pci=nomsi, io_queue_depth=2" 1 \
		"pci=nomsi nvme.io_queue_depth=2 e2e.qdepth=2 e2e.queues=1/0/0"
fi

# A multi-vCPU guest (issue 12): 4 vCPUs, a queue pair each, a worker per
# queue; fio verify with a job pinned to each vCPU, and each worker must
# have served commands. On QEMU 7.2 as the test VM's emulator a nested KVM
# guest with two vCPUs froze the test VM; on 10.0 it runs.
if late smp; then
	config_pass smp "4 vCPUs, 4 workers" 4 "e2e.queues=4/0/0" 4
fi

# Live migration (plan check-migrate; issue 13): the nested guest under KVM
# (l2-tests.sh migrate: fio randwrite with verify=crc32c, and fio randread
# of a region whose content it wrote, generation after generation, each
# read checked against the last generation) is migrated E2E_MIG_COUNT
# times (default 10) between QEMUs with the same command line on the same
# backend (run_l2_migrate, l2-run.sh), then told to stop (E2E-MIG-STOP in a
# mailbox block at 1020 MiB of /dev/nullb0, which the guest polls). The
# device under test, E2E_MIG_DEVICE: vhost-nvme (default), nvme (QEMU's
# -device nvme, migratable with patch 0004) or virtio-blk (migratable in
# stock QEMU: the control), on /dev/nullb0;
# E2E_MIG_DEVICE_OPTS: more properties of that -device (k=v,k=v);
# E2E_MIG_QEMU_OPTS: more QEMU options (words); E2E_MIG_ODD_OPTS: QEMU
# options of the odd-numbered QEMUs only, i.e. of every other source and
# destination (words; on vhost-nvme by default "-global
# vhost-nvme.poll-us=50": the module polls the SQs there, so migrations
# leave from and arrive at a polling device); E2E_MIG_APPEND: more of the
# nested kernel's command line (e.g. nvme.poll_queues=1); E2E_MIG_MEM: the
# nested guest's memory (default 256M). E2E_MIG_VARIANTS: after the pass,
# one more pass per word PROPS[/ARG], with the -device properties PROPS
# and the nested kernel's argument ARG added, and E2E_MIG_VARIANT_COUNT
# migrations (default 4); on vhost-nvme by default
# "dbcs=off/nvme.poll_queues=1": no shadow doorbells (every doorbell an
# ioeventfd) and a polled queue (a CQ without interrupts). A crash
# or hang of the nested guest on nvme or vhost-nvme: the same pass on
# virtio-blk decides, as in kvm_pass (on virtio-blk itself nothing does:
# a failure).
# Plans check-cpr and control-cpr (issue 13, part 2): the same passes with
# live updates instead (MIG_CPR=1 in run_l2_migrate: QEMU 10.0's
# cpr-transfer to a new QEMU on the same host, guest RAM in a shared
# memfd); on vhost-nvme each new QEMU takes the module's device over
# (VHOST_NVME_TAKE_OWNER) with its queues where they stood. The odd QEMUs'
# options by default: "-global vhost-nvme.x-irqfd=off", every other QEMU
# raises the interrupts from its main loop (as QEMU does for a masked
# vector): KVM's irqfds are exclusive waiters on the eventfd, so an irqfd
# the last QEMU's VM kept would take those interrupts (polling is not
# alternated: a QEMU without poll-us keeps the polling it found).
mig_devices() {	# mig_devices DEVICE OPTS: sets L2_DEVICE and L2_APPEND
	local drv="file=/dev/nullb0,if=none,id=m0,format=raw,cache=none,aio=native" o=$2
	[ -n "$o" ] && [ "${o:0:1}" != , ] && o=,$o
	case $1 in
	virtio-blk)
		L2_DEVICE=(-drive "$drv" -device "virtio-blk-pci,drive=m0$o")
		L2_APPEND=e2e.dev=/dev/vda ;;
	nvme)
		L2_DEVICE=(-drive "$drv" -device "nvme,drive=m0,serial=$SERIAL$o")
		L2_APPEND= ;;
	vhost-nvme)
		L2_DEVICE=(-device "vhost-nvme,backend=/dev/nullb0,serial=$SERIAL$o")
		L2_APPEND= ;;
	*)
		return 1 ;;
	esac
	# shellcheck disable=SC2206	# words, as documented
	L2_DEVICE+=(${E2E_MIG_QEMU_OPTS:-})
	# The odd QEMUs' options: the device under test's only.
	MIG_ODD_OPTS=()
	if [[ $PLAN == control-* ]] || [ "$1" != "${E2E_MIG_DEVICE:-vhost-nvme}" ]; then
		:
	elif [ "$1" = vhost-nvme ] && [ "$MIG_CPR" = 1 ]; then
		# shellcheck disable=SC2206
		MIG_ODD_OPTS=(${E2E_MIG_ODD_OPTS--global vhost-nvme.x-irqfd=off})
	elif [ "$1" = vhost-nvme ]; then
		# shellcheck disable=SC2206
		MIG_ODD_OPTS=(${E2E_MIG_ODD_OPTS--global vhost-nvme.poll-us=50})
	else
		# shellcheck disable=SC2206
		MIG_ODD_OPTS=(${E2E_MIG_ODD_OPTS:-})
	fi
	L2_APPEND+=" e2e.migsecs=540 ${E2E_MIG_APPEND:-} ${MIG_XAPPEND:-}"
}
MIG_MBOX=$((1020 * 256))	# the mailbox block (4 KiB blocks), as l2-tests.sh's
# l2_migrated: run_l2_migrate is done migrating; the guest is to stop
l2_migrated() {
	log "[$MIG_NAME] E2E-MIG-STOP to the guest (mailbox at 1020 MiB of /dev/nullb0)"
	printf 'E2E-MIG-STOP' | dd of=/dev/nullb0 bs=4k seek=$MIG_MBOX count=1 conv=sync,notrunc \
		oflag=direct status=none || log "[$MIG_NAME] writing the mailbox failed"
}
migrate_items() {	# migrate_items MIN: the items of a pass that ran to the end
	collect "$pfx"
	check "$pfx $MIG_DONE of $MIG_COUNT migrations completed, at least $1 (total/downtime ms each: ${MIG_TIMES:-none})${MIG_FAIL:+: $MIG_FAIL}" \
		[ "$MIG_DONE" = "$MIG_COUNT" ] && [ "$MIG_DONE" -ge "$1" ]
}
# migrate_run DEVICE OPTS NAME: one pass; sets L2_STATUS as run_l2
migrate_run() {
	MIG_NAME=$3
	mig_devices "$1" "$2" || { L2_STATUS=error L2_REASON="unknown E2E_MIG_DEVICE $1"; return; }
	dd if=/dev/zero of=/dev/nullb0 bs=4k seek=$MIG_MBOX count=1 oflag=direct status=none
	log "[$3] device: ${L2_DEVICE[*]}; append: $L2_APPEND"
	run_l2_migrate "$3" migrate "$MIG_COUNT" 600 150
}
# migrate_one DEVICE OPTS MIN: one pass of MIG_COUNT migrations and its
# items (at least MIN migrations); 1 if the pass did not run to the end
migrate_one() {
	local mdev=$1 opts=$2 pfx why odd=''
	mig_devices "$mdev" "$opts" && [ ${#MIG_ODD_OPTS[@]} -gt 0 ] &&
		odd=", every other QEMU ${MIG_ODD_OPTS[*]}"
	pfx="[kvm, $MIG_WHAT, $mdev${opts:+ $opts}${MIG_XAPPEND:+ $MIG_XAPPEND}]"
	case $PLAN in control-*) pfx="control: $pfx" ;; esac
	log "[mig-$mdev] $pfx: $MIG_COUNT migrations$odd"
	migrate_run "$mdev" "$opts" "mig-$mdev"
	case $L2_STATUS in
	done)
		migrate_items "$3"
		tap ok "$pfx nested guest under KVM ran to the end and powered off"
		return 0
		;;
	error)
		tap "not ok" "$pfx nested guest under KVM: QEMU refused to start: $L2_REASON"
		return 1
		;;
	esac
	why=$L2_REASON
	[ -n "$MIG_FAIL" ] && why+="; $MIG_FAIL"
	why+=" ($MIG_DONE migrations completed)"
	if [ "$mdev" = virtio-blk ]; then
		tap "not ok" "$pfx nested guest under KVM ran to the end: $why"
		return 1
	fi
	log "[mig-$mdev] control: the same pass on virtio-blk"
	migrate_run virtio-blk "" mig-control
	if [ "$L2_STATUS" = "done" ]; then
		tap "not ok" "$pfx nested guest under KVM ran to the end: $why, while the control on virtio-blk ran to the end"
	else
		tap "not ok" "$pfx nested guest under KVM ran to the end # SKIP infrastructure: $why; the control on virtio-blk failed too: $L2_REASON"
	fi
	return 1
}
MIG_CPR=0 MIG_WHAT=migrate
migrate_pass() {	# migrate_pass migrate|cpr
	local mdev=${E2E_MIG_DEVICE:-vhost-nvme} opts=${E2E_MIG_DEVICE_OPTS:-} v variants= before
	L2_MEM=${E2E_MIG_MEM:-256M}
	MIG_CPR=0 MIG_WHAT=migrate
	[ "$1" = cpr ] && MIG_CPR=1 MIG_WHAT=cpr-transfer
	case $PLAN in control-*) mdev=virtio-blk opts= ;; esac
	if [ $KVM = 0 ]; then
		tap "not ok" "[kvm, $MIG_WHAT, $mdev] no /dev/kvm in the test VM"
		return
	fi
	[ "$mdev" = vhost-nvme ] && variants=${E2E_MIG_VARIANTS-dbcs=off/nvme.poll_queues=1}
	[ "$mdev" != vhost-nvme ] && variants=${E2E_MIG_VARIANTS:-}
	case $PLAN in control-*) variants= ;; esac
	MIG_COUNT=${E2E_MIG_COUNT:-10}
	# The variants only after a pass with no failed item.
	before=$(grep -c '^not ok' "$TAP")
	if migrate_one "$mdev" "$opts" 10 && [ "$(grep -c '^not ok' "$TAP")" = "$before" ]; then
		MIG_COUNT=${E2E_MIG_VARIANT_COUNT:-4}
		for v in $variants; do
			MIG_XAPPEND=
			[[ $v == */* ]] && MIG_XAPPEND=${v#*/}
			migrate_one "$mdev" "${opts:+$opts,}${v%%/*}" "$MIG_COUNT" || break
		done
	fi
	MIG_XAPPEND=
	L2_MEM=
}
case $PLAN in
check-migrate|control-migrate) migrate_pass migrate ;;
check-cpr|control-cpr) migrate_pass cpr ;;
check-live|control-live) migrate_pass migrate; migrate_pass cpr ;;
esac

vn_unload_module || log "rmmod vhost_nvme failed"
check "vhost_nvme unloads after the nested guests" [ ! -d /sys/module/vhost_nvme ]
failed && exit 1
exit 0
