#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest-level part of `make bench`, run by tools/bench/bench.sh through
# vm-run.sh in a test VM with one vCPU (nested KVM inside the TCG test VM is
# reliable only with one; see tools/testing/e2e/README.md). Loads
# vhost_nvme.ko, null_blk (memory_backed=0 irqmode=0, as the engine-level
# part) and kvm_amd, then boots nested Linux guests under KVM with the QEMU
# built by tools/qemu/build-qemu.sh, one per device and repetition, the
# devices interleaved with a rotating order:
#
#   guest-vhost-nvme  -device vhost-nvme,backend=/dev/nullb0
#   guest-nvme        QEMU's NVMe controller (shadow doorbells, ioeventfd=on)
#   guest-virtio-blk  virtio-blk-pci
#
# the two baselines on a raw drive with cache=none,aio=native. Each nested
# guest runs fio (io_uring, direct) for every configuration (4K random reads
# at each QD of BENCH_QDS, 128K sequential reads at BENCH_SEQ_QD) and prints
# fio's JSON on its console; it lands in $VM_OUT/raw/REP-MODE-RW-qdQD-bsBS.json
# like the engine-level runs. `native-1vcpu` (fio's io_uring on /dev/nullb0
# in this VM) is the reference for this VM. A nested guest that crashes or
# hangs is retried once; runs that fail twice are missing from the medians
# and listed in notes.txt. Runs whose JSON is already in $VM_OUT/raw are
# skipped: bench.sh boots this VM a second time when the first one froze.
#
# Usage: guest-level.sh QEMU KERNEL INITRD
set -uo pipefail
: "${VM_OUT:?run this through tools/bench/bench.sh}"
# shellcheck source=../testing/vm/guest-lib.sh
. tools/testing/vm/guest-lib.sh
# shellcheck disable=SC1091
[ -f "$VM_OUT/bench.env" ] && . "$VM_OUT/bench.env"

QEMU=$1 KERNEL=$2 INITRD=$3
INITRD_MIN=$INITRD
RUNTIME=${BENCH_RUNTIME:-3}
RAMP=${BENCH_RAMP:-1}
REPS=${BENCH_REPS:-3}
QDS=${BENCH_QDS:-1 4 16 64}
SEQ_QD=${BENCH_SEQ_QD:-16}
DEVICES=${BENCH_GUEST_DEVICES:-vhost-nvme nvme virtio-blk}
RAW=$VM_OUT/raw
NOTES=$VM_OUT/notes.txt
DEV=/dev/nullb0
SERIAL=vn-bench-0001
mkdir -p "$RAW"
touch "$NOTES"	# a second boot (after a frozen first one) adds to it

say() { echo "bench: $*"; }
log() { say "$@"; }	# for l2-run.sh
note() {
	grep -qxF -- "$*" "$NOTES" && return
	echo "$*" >> "$NOTES"
	say "note: $*"
}
# shellcheck source=../testing/e2e/l2-run.sh
. tools/testing/e2e/l2-run.sh

say "guest level: loading vhost_nvme.ko, null_blk (memory_backed=0 irqmode=0), kvm_amd"
vn_load_module || { say "FAILED: cannot load vhost_nvme.ko"; exit 1; }
modprobe null_blk nr_devices=1 memory_backed=0 irqmode=0 gb=16 ||
	{ say "FAILED: cannot load null_blk"; exit 1; }
# vgif=0: see guest-e2e.sh (the test VM lost interrupts with it on).
modprobe kvm_amd vgif=0 2>/dev/null || modprobe kvm_intel 2>/dev/null || true
[ -c /dev/kvm ] || { say "FAILED: no /dev/kvm in the test VM"; exit 1; }
[ -b "$DEV" ] || { say "FAILED: no $DEV"; exit 1; }
[ -x "$QEMU" ] || { say "FAILED: no QEMU at $QEMU"; exit 1; }
NSZE=$(cat /sys/block/nullb0/size)

kvm_opts=
for p in nested npt vgif avic; do
	kvm_opts+=" $p=$(cat "/sys/module/kvm_amd/parameters/$p" 2>/dev/null || echo -)"
done
qver=$("$QEMU" --version | head -n1)
note "guest-level modes: nested guests under KVM in a test VM with $(nproc) vCPU (nested KVM is reliable only with one), kvm_amd${kvm_opts}; nested guest: 1 vCPU, 1 GiB, Debian $(uname -r), fio io_uring direct; $qver; baselines on a raw drive with cache=none,aio=native; nvme with its defaults (shadow doorbells) and ioeventfd=on; ratios in brackets are to native-1vcpu, fio on the backend in that same VM"

configs=()
for qd in $QDS; do configs+=("randread:4096:$qd"); done
configs+=("read:131072:$SEQ_QD")
spec=$(IFS=,; echo "${configs[*]}")
nconf=${#configs[@]}
read -ra devs <<< "$DEVICES"

# have REP MODE: every configuration of REP and MODE has its JSON (done by
# an earlier boot of this VM, which then froze).
have() {
	local c rw bs qd
	for c in "${configs[@]}"; do
		IFS=: read -r rw bs qd <<< "$c"
		[ -s "$RAW/$1-$2-$rw-qd$qd-bs$bs.json" ] || return 1
	done
}

# The reference: fio on the backend in this VM.
native() {	# native REP
	local c rw bs qd out outs=()
	have "$1" native-1vcpu && return
	for c in "${configs[@]}"; do
		IFS=: read -r rw bs qd <<< "$c"
		out=$RAW/$1-native-1vcpu-$rw-qd$qd-bs$bs.json
		if timeout -k 5 $((RUNTIME + RAMP + 60)) fio --name=native --filename="$DEV" \
			--ioengine=io_uring --direct=1 --rw="$rw" --bs="$bs" --iodepth="$qd" \
			--time_based --runtime="$RUNTIME" --ramp_time="$RAMP" --norandommap \
			--randrepeat=0 --lat_percentiles=1 --output-format=json \
			--output="$out" > /dev/null 2>&1; then
			outs+=("$out")
		else
			mv "$out" "$out.failed" 2>/dev/null
			say "FAILED: native-1vcpu $rw bs=$bs qd=$qd"
		fi
	done
	summary "$1" "${outs[@]}"
}

summary() {	# summary REP FILE...: progress lines, one python3 for all
	local rep=$1 line
	shift
	[ $# -gt 0 ] || return 0
	python3 tools/bench/report.py --one "$@" | while IFS= read -r line; do
		say "rep $rep $line"
	done
}

# split_json REP MODE: the fio JSON the last nested guest printed (gzipped,
# in base64), one file per configuration; returns how many it found.
split_json() {
	local b64 n=0
	tr -d '\r' < "$L2_CON" | awk -v dir="$RAW" -v pfx="$1-$2-" '
		/^E2E-JSON-BEGIN / { f = dir "/" pfx $2 ".json.b64"; next }
		/^E2E-JSON-END/ { if (f) close(f); f = ""; next }
		f { print > f }'
	for b64 in "$RAW/$1-$2-"*.json.b64; do
		[ -f "$b64" ] || continue
		base64 -d "$b64" | gunzip > "${b64%.b64}" 2>/dev/null &&
			n=$((n + 1)) || rm -f "${b64%.b64}"
		rm -f "$b64"
	done
	return $n
}

one_device() {	# one_device REP DEVICE
	local rep=$1 d=$2 n attempt drv
	drv="file=$DEV,if=none,id=d0,format=raw,cache=none,aio=native"
	L2_APPEND="e2e.bench=$spec e2e.secs=$RUNTIME e2e.ramp=$RAMP"
	case $d in
	vhost-nvme) L2_DEVICE=(-device "vhost-nvme,backend=$DEV,serial=$SERIAL") ;;
	nvme) L2_DEVICE=(-drive "$drv" -device "nvme,drive=d0,serial=$SERIAL,ioeventfd=on") ;;
	virtio-blk) L2_DEVICE=(-drive "$drv" -device "virtio-blk-pci,drive=d0")
		    L2_APPEND+=" e2e.dev=/dev/vda" ;;
	*) say "FAILED: unknown device $d"; return 1 ;;
	esac
	for attempt in 1 2; do
		run_l2 "bench-$rep-$d-$attempt" kvm bench $((120 + nconf * (RUNTIME + RAMP + 30))) 120
		split_json "$rep" "guest-$d"
		n=$?
		if [ "$L2_STATUS" = "done" ] && [ "$n" -eq "$nconf" ]; then
			[ "$attempt" = 1 ] ||
				note "guest-$d rep $rep: the nested guest was booted twice (an infrastructure failure the first time)"
			return 0
		fi
		if [ "$L2_STATUS" = error ]; then
			say "FAILED: QEMU refused to start guest-$d: $(head -n 3 "${L2_CON%.console}.stderr")"
			return 1
		fi
		say "guest-$d rep $rep attempt $attempt: ${L2_REASON:-$n of $nconf fio runs}; $([ "$attempt" = 1 ] && echo retrying)"
	done
	note "guest-$d rep $rep: failed twice (${L2_REASON:-incomplete fio output}); its runs are missing"
	return 1
}

t0=$(date +%s)
failed=0
say "guest level: $REPS repetitions x (native-1vcpu + ${#devs[@]} nested guests x $nconf fio runs of ${RUNTIME}s + ${RAMP}s)"
for ((rep = 1; rep <= REPS; rep++)); do
	native "$rep"
	for ((k = 0; k < ${#devs[@]}; k++)); do
		d=${devs[(k + rep - 1) % ${#devs[@]}]}
		if have "$rep" "guest-$d"; then
			say "rep $rep guest-$d: done by an earlier boot"
			continue
		fi
		one_device "$rep" "$d" || failed=$((failed + 1))
		outs=()
		for c in "${configs[@]}"; do
			IFS=: read -r rw bs qd <<< "$c"
			f=$RAW/$rep-guest-$d-$rw-qd$qd-bs$bs.json
			[ -f "$f" ] && outs+=("$f")
		done
		summary "$rep" "${outs[@]}"
		say "[$(( $(date +%s) - t0 ))s] rep $rep guest-$d done"
	done
done
rmmod null_blk
vn_unload_module
say "guest level done: $failed nested guests failed, $(( $(date +%s) - t0 ))s"
[ "$failed" -eq 0 ]
