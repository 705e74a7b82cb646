#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Where the time goes: boots the bench's test VM (smp 2, the same null_blk
# memory_backed=0 irqmode=0 backend) and runs fio jobs of `make bench` under
# `perf record -a -g` (cpu-clock at 1 kHz: TCG has no PMU), one profile per job.
# Writes results/profile/NAME.txt: the job's IOPS, the CPU time per task and
# CPU, the hottest symbols (self time), and the call chains of the top ones.
#
# Usage: tools/bench/profile.sh [NAME ...]
#   NAME: native-qd1 vhost-nvme-qd1 vhost-nvme-poll-qd1 vhost-nvme-cqpoll-qd1
#         userspace-qd1 vhost-nvme-qd16 userspace-qd16 (default: all)
# Environment: PROFILE_SECS (fio runtime, 8), VM_RUN_OPTS.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
if [ "${1:-}" = --guest ]; then
	shift
	set +e +o pipefail	# perf report | head: SIGPIPE is expected
	# ------------------------------------------------ inside the test VM
	# shellcheck source=../testing/vm/guest-lib.sh
	. tools/testing/vm/guest-lib.sh
	ENGINE=$PWD/tools/fio-vhost-nvme/fio-vhost-nvme.so
	SECS=$1
	shift
	vn_load_module
	modprobe null_blk nr_devices=1 memory_backed=0 irqmode=0 gb=16
	echo -1 > /proc/sys/kernel/perf_event_paranoid
	echo 0 > /proc/sys/kernel/kptr_restrict
	for name in "$@"; do
		eng="--ioengine=external:$ENGINE --shadow_db=1"
		case $name in
		native-qd*) args="--ioengine=io_uring --direct=1" ;;
		vhost-nvme-qd*) args=$eng ;;
		vhost-nvme-poll-qd*) args="$eng --sq_poll_us=500" ;;
		vhost-nvme-cqpoll-qd*) args="$eng --sq_poll_us=500 --cq_poll=1" ;;
		userspace-qd*) args="$eng --userspace=1" ;;
		*) echo "profile: unknown job $name"; continue ;;
		esac
		qd=${name##*-qd}
		out=$VM_OUT/$name
		data=/tmp/$name.data	# tmpfs: perf cannot mmap its output on 9p
		echo "profile: $name"
		# shellcheck disable=SC2086
		perf record -e cpu-clock -F 1000 -a -g -o "$data" -- \
			fio --name="$name" --filename=/dev/nullb0 --rw=randread --bs=4k \
			--iodepth="$qd" --time_based --runtime="$SECS" --norandommap \
			--randrepeat=0 $args > "$out.fio" 2> "$out.perf-err" || true
		{
			echo "# $name: fio 4k randread QD$qd on null_blk (memory_backed=0 irqmode=0), ${SECS}s"
			grep -E '^ +read: IOPS=|^ +lat \(.sec\): .*avg=' "$out.fio" | sed -E 's/, stdev.*//'
			echo
			echo "# CPU time per task (samples of cpu-clock at 1 kHz on each CPU)"
			perf report -i "$data" --no-children --sort comm --stdio -g none 2>/dev/null |
				grep -v '^#' | grep -v '^$' | head -n 12
			echo
			echo "# CPU time per CPU"
			perf report -i "$data" --no-children --sort cpu --stdio -g none 2>/dev/null |
				grep -v '^#' | grep -v '^$' | head -n 4
			echo
			echo "# hottest symbols, self time, with their task"
			perf report -i "$data" --no-children --sort comm,sym --stdio -g none 2>/dev/null |
				grep -v '^#' | grep -v '^$' | head -n 40
			echo
			echo "# call chains of the hottest symbols (callers)"
			perf report -i "$data" --no-children --sort sym --stdio \
				-g caller,0.5,callee,function,percent --percent-limit 3 2>/dev/null |
				grep -v '^$' | head -n 200
		} > "$out.txt"
		rm -f "$data" "$data.old"
		head -n 3 "$out.txt"
	done
	rmmod null_blk
	vn_unload_module
	exit 0
fi

# ------------------------------------------------------------ on the host
JOBS=("$@")
[ ${#JOBS[@]} -gt 0 ] || JOBS=(native-qd1 vhost-nvme-qd1 vhost-nvme-poll-qd1 vhost-nvme-cqpoll-qd1
			      userspace-qd1 vhost-nvme-qd16 userspace-qd16)
SECS=${PROFILE_SECS:-8}
OUT=$REPO/results/profile
rm -rf "$OUT"
mkdir -p "$OUT"
tools/testing/deps.sh > "$OUT/deps.log" 2>&1 || { cat "$OUT/deps.log"; exit 1; }
if ! command -v perf > /dev/null; then
	echo "profile: installing linux-perf"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		-o Dpkg::Use-Pty=0 linux-perf; } >> "$OUT/deps.log" 2>&1 ||
		{ tail -n 20 "$OUT/deps.log"; exit 1; }
fi
# shellcheck source=../testing/env.sh
. tools/testing/env.sh
make -C "$KDIR" M="$REPO" modules > "$OUT/build.log" 2>&1 ||
	{ tail -n 30 "$OUT/build.log"; exit 1; }
make -C tools/fio-vhost-nvme > "$OUT/build-engine.log" 2>&1 ||
	{ tail -n 30 "$OUT/build-engine.log"; exit 1; }
# shellcheck disable=SC2086
tools/testing/vm/vm-run.sh --smp 2 --timeout $((${#JOBS[@]} * (SECS + 120) + 120)) \
	${VM_RUN_OPTS:-} --out "$OUT" tools/bench/profile.sh --guest "$SECS" "${JOBS[@]}"
echo "profile: results in $OUT/*.txt"
