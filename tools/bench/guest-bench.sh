#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of `make bench` (run by tools/bench/bench.sh through vm-run.sh):
# loads vhost_nvme.ko, creates null_blk (memory_backed=0 irqmode=0: the
# backend costs next to nothing, so the figures are the I/O path's) and
# runs fio, interleaving the modes and repeating every configuration:
#
#   native, vhost-nvme, vhost-nvme-poll, vhost-nvme-2w, userspace and
#   userspace-poll (tools/bench/modes.sh; every mode at the same I/Os in
#   flight; all but userspace-poll by default)
#
# for 4K random reads at each QD of BENCH_QDS and 128K sequential reads at
# BENCH_SEQ_QD. Raw fio JSON goes to $VM_OUT/raw/REP-MODE-RW-qdQD-bsBS.json,
# notes to $VM_OUT/notes.txt, the environment to $VM_OUT/env.txt. Progress
# lines start with "bench:".
set -uo pipefail
: "${VM_OUT:?run this through tools/bench/bench.sh}"
# shellcheck source=../testing/vm/guest-lib.sh
. tools/testing/vm/guest-lib.sh
# shellcheck source=modes.sh
. tools/bench/modes.sh
# Settings from bench.sh (the guest inherits no environment from the host).
# shellcheck disable=SC1091
[ -f "$VM_OUT/bench.env" ] && . "$VM_OUT/bench.env"

RUNTIME=${BENCH_RUNTIME:-3}
RAMP=${BENCH_RAMP:-1}
REPS=${BENCH_REPS:-3}
QDS=${BENCH_QDS:-1 4 16 64}
SEQ_QD=${BENCH_SEQ_QD:-16}
# shellcheck disable=SC2034	# used by modes.sh
POLL_US=${BENCH_POLL_US:-500}
MODES=${BENCH_MODES:-native native-softirq native-timer vhost-nvme vhost-nvme-poll vhost-nvme-2w userspace}
ENGINE=$PWD/tools/fio-vhost-nvme/fio-vhost-nvme.so
RAW=$VM_OUT/raw
NOTES=$VM_OUT/notes.txt
DEV=/dev/nullb0
mkdir -p "$RAW"
: > "$NOTES"

say() { echo "bench: $*"; }
note() {	# once per distinct text
	grep -qxF -- "$*" "$NOTES" && return
	echo "$*" >> "$NOTES"
	say "note: $*"
}

say "loading vhost_nvme.ko and null_blk (memory_backed=0 irqmode=0)"
vn_load_module || { say "FAILED: cannot load vhost_nvme.ko"; exit 1; }
modprobe null_blk nr_devices=1 memory_backed=0 irqmode=0 gb=16 ||
	{ say "FAILED: cannot load null_blk"; exit 1; }
[ -b "$DEV" ] || { say "FAILED: no $DEV"; exit 1; }
bench_async_backends || { say "FAILED: null_blk devices with irqmode 1 and 2 (configfs)"; exit 1; }
[ -f "$ENGINE" ] || { say "FAILED: $ENGINE not built"; exit 1; }

{
	echo "guest_kernel=$(uname -r)"
	echo "guest_cpus=$(nproc)"
	echo "guest_cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	echo "fio=$(fio --version)"
	for p in /sys/module/vhost_nvme/parameters/*; do
		[ -f "$p" ] && echo "vhost_nvme.${p##*/}=$(cat "$p")"
	done
	for p in memory_backed irqmode queue_mode hw_queue_depth submit_queues; do
		echo "null_blk.$p=$(cat /sys/module/null_blk/parameters/$p 2>/dev/null)"
	done
} > "$VM_OUT/env.txt"

# One fio process per configuration, a stonewalled job per mode (in the
# given order): under TCG a fio start costs about a second, as much as a
# fifth of a run. report.py --split gives each mode's job its own file,
# $RAW/REP-MODE-RW-qdQD-bsBS.json, as if run alone, and prints its line.
run_config() {	# run_config REP RW BS QD MODE...
	local rep=$1 rw=$2 bs=$3 qd=$4 all args=() mode rc
	shift 4
	all=$RAW/$rep-all-$rw-qd$qd-bs$bs.json.all
	for mode in "$@"; do
		# shellcheck disable=SC2207
		args+=(--name="$mode" --stonewall $(bench_mode_args "$mode" "$qd"))
	done
	timeout -k 5 $(($# * (RUNTIME + RAMP + 10) + 60)) fio \
		--rw="$rw" --bs="$bs" --time_based --runtime="$RUNTIME" --ramp_time="$RAMP" \
		--norandommap --randrepeat=0 --group_reporting --lat_percentiles=1 \
		--output-format=json --output="$all" "${args[@]}" > "$all.err" 2>&1
	rc=$?
	while IFS= read -r line; do
		note "$line"
	done < <(grep 'unused' "$all.err")
	[ -s "$all.err" ] || rm -f "$all.err"
	[ $rc -eq 0 ] ||
		say "FAILED: fio exit $rc for $rw bs=$bs qd=$qd: $(head -c 300 "$all.err" 2>/dev/null)"
	python3 tools/bench/report.py --split "$all" --prefix="$RAW/$rep-" \
		--suffix="-$rw-qd$qd-bs$bs.json" --modes "$@" | while IFS= read -r line; do
		say "[$n/$total $(( $(date +%s) - t0 ))s] rep $rep $line"
	done
	rc=$((rc | PIPESTATUS[0]))
	rm -f "$all"
	return $rc
}

# Configurations: 4K randread at each QD, then 128K sequential read.
configs=()
for qd in $QDS; do configs+=("randread 4096 $qd"); done
configs+=("read 131072 $SEQ_QD")
read -ra modes <<< "$MODES"
total=$((REPS * ${#configs[@]} * ${#modes[@]}))
n=0 failed=0 t0=$(date +%s)
say "$total runs: ${#modes[@]} modes x ${#configs[@]} configurations x $REPS repetitions, ${RUNTIME}s + ${RAMP}s ramp each"
for ((rep = 1; rep <= REPS; rep++)); do
	for ((c = 0; c < ${#configs[@]}; c++)); do
		read -r rw bs qd <<< "${configs[c]}"
		# Interleave, and rotate the order so no mode always goes first.
		order=()
		for ((m = 0; m < ${#modes[@]}; m++)); do
			order+=("${modes[(m + rep + c) % ${#modes[@]}]}")
		done
		n=$((n + ${#modes[@]}))
		run_config "$rep" "$rw" "$bs" "$qd" "${order[@]}" || failed=$((failed + 1))
	done
done

rmmod null_blk
vn_unload_module
say "done: $n runs, $failed configurations with failures, $(( $(date +%s) - t0 ))s"
[ "$failed" -eq 0 ]
