#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of `make bench-icount` (tools/bench/icount.sh, through
# vm-run.sh with the insn-count plugin): fio runs of a fixed number of
# I/Os, each counted between the plugin's markers (tools/bench/icount/mark,
# run by fio's exec_prerun and exec_postrun: from the job's first I/O to
# its last, without fio's setup and exit) and reported at a third marker
# after it. Each
# configuration runs with ICOUNT_SMALL and ICOUNT_LARGE I/Os: the
# difference of the two counts, divided by the difference of the I/Os,
# is the cost of one I/O without fio's start and end.
#
# Modes (the fio engine's, on null_blk memory_backed=0 irqmode=0):
#   native, vhost-nvme, vhost-nvme-poll, vhost-nvme-2w, userspace and
#   userspace-poll (tools/bench/modes.sh; polling for ICOUNT_POLL_US)
# Writes $VM_OUT/icount-runs.txt: one line per marked run, in order:
#   SEGMENT INDEX MODE RW BS QD IOS STATUS
# (one segment: a resync marker first; see insn-count.c).
set -uo pipefail
: "${VM_OUT:?run this through tools/bench/icount.sh}"
# shellcheck source=../testing/vm/guest-lib.sh
. tools/testing/vm/guest-lib.sh
# shellcheck source=modes.sh
. tools/bench/modes.sh
# shellcheck disable=SC1091
[ -f "$VM_OUT/icount.env" ] && . "$VM_OUT/icount.env"

MODES=${ICOUNT_MODES:-native native-softirq native-timer vhost-nvme vhost-nvme-poll vhost-nvme-2w userspace userspace-poll}
CONFIGS=${ICOUNT_CONFIGS:-randread:4096:1 randread:4096:16 read:131072:16}
SMALL=${ICOUNT_SMALL:-2000}
LARGE=${ICOUNT_LARGE:-12000}
REPS=${ICOUNT_REPS:-2}
# shellcheck disable=SC2034	# used by modes.sh
POLL_US=${ICOUNT_POLL_US:-500}
ENGINE=$PWD/tools/fio-vhost-nvme/fio-vhost-nvme.so
MARK=$PWD/tools/bench/icount/build/mark
DEV=/dev/nullb0
RUNS=$VM_OUT/icount-runs.txt
: > "$RUNS"
say() { echo "icount: $*"; }

fio_run() {	# fio_run MODE RW BS QD IOS [fio options]
	local mode=$1 rw=$2 bs=$3 qd=$4 ios=$5

	shift 5
	# shellcheck disable=SC2046	# the mode's words
	timeout -k 5 600 fio --name=icount --rw="$rw" \
		--bs="$bs" --number_ios="$ios" --norandommap --randrepeat=0 \
		$(bench_mode_args "$mode" "$qd") "$@" > "$VM_OUT/fio.last" 2>&1
}

say "loading vhost_nvme.ko and null_blk (memory_backed=0 irqmode=0)"
vn_load_module || { say "FAILED: cannot load vhost_nvme.ko"; exit 1; }
modprobe null_blk nr_devices=1 memory_backed=0 irqmode=0 gb=16 ||
	{ say "FAILED: cannot load null_blk"; exit 1; }
[ -b "$DEV" ] && [ -f "$ENGINE" ] && [ -x "$MARK" ] ||
	{ say "FAILED: no $DEV, $ENGINE or $MARK"; exit 1; }
bench_async_backends || { say "FAILED: null_blk devices with irqmode 1 and 2 (configfs)"; exit 1; }
"$MARK" resync || { say "FAILED: $MARK does not run"; exit 1; }
# The kernel's and the module's symbols, for the plugin's profile.
echo 0 > /proc/sys/kernel/kptr_restrict
cat /proc/kallsyms > "$VM_OUT/kallsyms"

i=0 failed=0 t0=$SECONDS
for ((rep = 1; rep <= REPS; rep++)); do
	for c in $CONFIGS; do
		IFS=: read -r rw bs qd <<< "$c"
		for mode in $MODES; do
			# An uncounted run first: the first fio of a mode reads
			# fio, the engine and their libraries through 9p and
			# faults them in, millions of instructions that the
			# difference of the two sizes would not cancel.
			fio_run "$mode" "$rw" "$bs" "$qd" "$SMALL"
			for ios in $SMALL $LARGE; do
				# Counted from fio's start of the job's I/O to its
				# end: fio's own setup and exit vary too much.
				fio_run "$mode" "$rw" "$bs" "$qd" "$ios" \
					--exec_prerun="$MARK start" --exec_postrun="$MARK stop"
				st=$?
				"$MARK" end
				i=$((i + 1))
				echo "1 $i $mode $rw $bs $qd $ios $st" >> "$RUNS"
				if [ $st != 0 ]; then
					failed=$((failed + 1))
					say "FAILED: $mode $rw bs=$bs qd=$qd $ios I/Os: fio status $st"
					sed 's/^/icount:   /' "$VM_OUT/fio.last" | tail -n 5
				fi
			done
			say "[$((SECONDS - t0))s] rep $rep $mode $rw bs=$bs qd=$qd"
		done
	done
done
rmmod null_blk
vn_unload_module
say "done: $i runs, $failed failed"
[ "$failed" -eq 0 ]
