#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench`: deps, module and fio engine builds, then two VM runs:
#  1. engine level (vm-run.sh, smp 2; tools/bench/guest-bench.sh): 4K random
#     read IOPS and p50/p99 latency at QD 1/4/16/64 and 128K sequential read
#     bandwidth on a null_blk (memory_backed=0 irqmode=0) for native io_uring
#     (also on null_blks that complete in a softirq and from a timer), the
#     fio engine on the module (notification, polling, 2 workers) and the
#     engine's userspace controller, interleaved and repeated;
#  2. guest level (smp 1: nested KVM is reliable only with one vCPU;
#     tools/bench/guest-level.sh): the same fio jobs in a nested Linux guest
#     under KVM with -device vhost-nvme, QEMU's -device nvme and
#     virtio-blk-pci on the same null_blk, with QEMU built by
#     tools/qemu/build-qemu.sh.
# Writes results/bench.json (medians, one record per mode/rw/bs/qd),
# results/bench.md (tables with every figure's ratio to native) and
# results/bench.png (gnuplot); raw fio output in results/bench/.
#
# Environment: BENCH_RUNTIME (s per run, 3), BENCH_RAMP (1), BENCH_REPS (3),
# BENCH_QDS ("1 4 16 64"), BENCH_SEQ_QD (16), BENCH_POLL_US (500; see below),
# BENCH_MODES (engine-level modes, all seven), BENCH_GUEST (1; 0 skips the
# guest level), BENCH_GUEST_DEVICES ("vhost-nvme nvme virtio-blk"),
# VM_RUN_OPTS (extra vm-run.sh options).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
RESULTS=${RESULTS:-$REPO/results}
OUT=$RESULTS/bench
say() { echo "bench: $*"; }
t0=$(date +%s)

mkdir -p "$OUT"
say "deps"
tools/testing/deps.sh --bench > "$OUT/deps.log" 2>&1 || { cat "$OUT/deps.log"; exit 1; }
if [ "$(dpkg-query -W -f='${Status}' gnuplot-nox 2>/dev/null)" != "install ok installed" ]; then
	say "installing gnuplot-nox"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		-o Dpkg::Use-Pty=0 gnuplot-nox; } >> "$OUT/deps.log" 2>&1 ||
		{ tail -n 20 "$OUT/deps.log"; exit 1; }
fi
# shellcheck source=../testing/env.sh
. tools/testing/env.sh
# shellcheck source=lib.sh
. tools/bench/lib.sh

export BENCH_RUNTIME=${BENCH_RUNTIME:-3} BENCH_RAMP=${BENCH_RAMP:-1} BENCH_REPS=${BENCH_REPS:-3}
export BENCH_QDS=${BENCH_QDS:-1 4 16 64} BENCH_SEQ_QD=${BENCH_SEQ_QD:-16}
# The SQ polling budget of vhost-nvme-poll. Under TCG the engine takes
# 100-200 µs between a completion and its next submission at QD1 (a few µs
# on hardware): a budget below that never catches one, and the adaptive
# window drops to zero (polling = notification). 500 µs is TCG-sized.
export BENCH_POLL_US=${BENCH_POLL_US:-500}
[ -n "${BENCH_MODES:-}" ] && export BENCH_MODES
[ -n "${BENCH_GUEST_DEVICES:-}" ] && export BENCH_GUEST_DEVICES
GUEST=${BENCH_GUEST:-1}
bench_build "$OUT" "$GUEST" || exit 1
# The guests inherit nothing from here but the job file: pass the settings
# through a file in the output share that the guest scripts read.
rm -rf "$OUT/vm" "$OUT/vm-guest"
mkdir -p "$OUT/vm" "$OUT/vm-guest"
env | grep -E '^BENCH_' | sed -E "s/^([A-Z_]+)=(.*)$/export \1='\2'/" > "$OUT/vm/bench.env"
cp "$OUT/vm/bench.env" "$OUT/vm-guest/bench.env"

nq=$(wc -w <<< "$BENCH_QDS")
nm=$(wc -w <<< "${BENCH_MODES:-a b c d e f g}")
nd=$(wc -w <<< "${BENCH_GUEST_DEVICES:-a b c}")
runs=$((BENCH_REPS * (nq + 1) * nm))
# fio under TCG needs a few seconds beyond runtime + ramp to start and stop.
budget=$((runs * (BENCH_RUNTIME + BENCH_RAMP + 8) + 300))
# A nested guest boots in 10-20 s; its fio runs cost as much as the others.
gruns=$((BENCH_REPS * (nq + 1) * (nd + 1)))
gbudget=$((gruns * (BENCH_RUNTIME + BENCH_RAMP + 15) + BENCH_REPS * nd * 2 * 60 + 300))

# How busy the host is with other work while our VM runs: CPU time of
# everything but our QEMU (found by its console path), sampled every 5 s.
busy_sampler() {	# busy_sampler VMOUT FILE
	local pid ticks t0 b0 q0 t b q qt hz
	hz=$(getconf CLK_TCK)
	read -r _ a b c _ < /proc/stat
	b0=$((a + b + c)) t0=$(date +%s.%N) q0=
	while sleep 5; do
		pid=$(pgrep -f -- "^qemu-system-x86_64 .*path=$1/console.log" | head -n1) || continue
		[ -n "$pid" ] || continue
		read -r _ a b c _ < /proc/stat
		read -ra st < "/proc/$pid/stat" 2>/dev/null || continue
		qt=$((st[13] + st[14]))
		if [ -z "$q0" ]; then
			q0=$qt b0=$((a + b + c)) t0=$(date +%s.%N)
			continue
		fi
		t=$(date +%s.%N) b=$((a + b + c)) q=$qt
		ticks=$(( (b - b0) - (q - q0) ))
		awk -v x="$ticks" -v hz="$hz" -v t="$t" -v t0="$t0" -v n="$(nproc)" \
			'BEGIN { v = 100 * x / hz / (t - t0) / n; printf "%.0f\n", v < 0 ? 0 : v }' > "$2"
	done
}

# run_vm NAME VMOUT VM-RUN-OPTIONS... -- SCRIPT ARGS...: one VM, its
# progress lines followed; sets OTHER to the host's other load in percent.
run_vm() {
	local name=$1 vmout=$2 tailpid samplerpid rc=0
	shift 2
	rm -f "$OUT/host-other-cpu-$name.txt"
	busy_sampler "$vmout" "$OUT/host-other-cpu-$name.txt" &
	samplerpid=$!
	tail -n +1 -F "$vmout/guest.log" 2>/dev/null | grep --line-buffered '^bench:' &
	tailpid=$!
	# shellcheck disable=SC2086
	tools/testing/vm/vm-run.sh "$@" > "$OUT/vm-run-$name.log" 2>&1 || rc=$?
	sleep 1
	kill "$tailpid" "$samplerpid" 2>/dev/null || true
	wait "$tailpid" "$samplerpid" 2>/dev/null || true
	OTHER=$(cat "$OUT/host-other-cpu-$name.txt" 2>/dev/null || echo '?')
	say "$name: other work on the host used ${OTHER}% of its CPU while the VM ran"
	if [ "$OTHER" != '?' ] && [ "$OTHER" -ge 10 ]; then
		echo "$name: the host was busy with other work during the run (${OTHER}% of its CPU besides this VM): figures are depressed and noisy" >> "$vmout/notes.txt"
	fi
	grep -E 'boot|exited|FAIL|silent' "$OUT/vm-run-$name.log" | sed 's/^/bench: /' || true
	return $rc
}

rc=0
say "engine level: booting the VM (smp 2): $runs fio runs, about $((runs * (BENCH_RUNTIME + BENCH_RAMP + 2) / 60)) min (timeout ${budget}s)"
# shellcheck disable=SC2086
run_vm engine "$OUT/vm" --smp 2 --timeout "$budget" ${VM_RUN_OPTS:-} --out "$OUT/vm" \
	tools/bench/guest-bench.sh || rc=$?
other="$OTHER%"
if [ "$GUEST" = 1 ]; then
	# The uncompressed kernel vm-run.sh extracted boots faster (PVH entry).
	L2_KERNEL=$VN_CACHE/vm/vmlinux-$KVER
	[ -s "$L2_KERNEL" ] || L2_KERNEL=$VMLINUZ
	say "guest level: booting the VM (smp 1): $gruns fio runs in nested guests, about $((gruns * (BENCH_RUNTIME + BENCH_RAMP + 2) / 60 + BENCH_REPS * nd / 3)) min (timeout ${gbudget}s)"
	grc=0
	# shellcheck disable=SC2086
	run_vm guest "$OUT/vm-guest" --smp 1 --timeout "$gbudget" --idle 150 ${VM_RUN_OPTS:-} \
		--out "$OUT/vm-guest" tools/bench/guest-level.sh "$QEMU" "$L2_KERNEL" "$INITRD" || grc=$?
	if [ -f "$OUT/vm-guest/.vmrun/idle" ]; then
		# A test VM running nested KVM can freeze (its vCPU halted and
		# never woken): boot it once more for the runs it had not done.
		msg="guest level: the test VM froze (console silent for 150 s) and was booted again for the runs it had not done"
		say "$msg"
		echo "$msg" >> "$OUT/vm-guest/notes.txt"
		cp "$OUT/vm-guest/console.log" "$OUT/vm-guest/console-frozen.log"
		grc=0
		# shellcheck disable=SC2086
		run_vm guest "$OUT/vm-guest" --smp 1 --timeout "$gbudget" --idle 150 ${VM_RUN_OPTS:-} \
			--out "$OUT/vm-guest" tools/bench/guest-level.sh "$QEMU" "$L2_KERNEL" "$INITRD" || grc=$?
		[ -f "$OUT/vm-guest/.vmrun/idle" ] &&
			echo "guest level: the test VM froze a second time: the runs it had not done are missing" >> "$OUT/vm-guest/notes.txt"
	fi
	[ "$grc" = 0 ] || rc=$grc
	other="$other (engine level), $OTHER% (guest level)"
	mkdir -p "$OUT/vm/raw"
	cp "$OUT/vm-guest/raw/"* "$OUT/vm/raw/" 2>/dev/null || true
	cat "$OUT/vm-guest/notes.txt" >> "$OUT/vm/notes.txt" 2>/dev/null || true
else
	echo "guest-level modes: not measured (BENCH_GUEST=0)" >> "$OUT/vm/notes.txt"
fi
VMOUT=$OUT/vm
if [ ! -d "$VMOUT/raw" ]; then
	say "no results (see $OUT/vm-run-engine.log and $VMOUT/console.log)"
	exit 1
fi

accel=$(grep -oE -- '-accel [a-z]+' "$VMOUT/.vmrun/qemu-cmdline" 2>/dev/null | cut -d' ' -f2 || true)
rm -f "$RESULTS/bench.json" "$RESULTS/bench.md" "$RESULTS/bench.png"
python3 tools/bench/report.py --raw "$VMOUT/raw" --env "$VMOUT/env.txt" --notes "$VMOUT/notes.txt" \
	--json "$RESULTS/bench.json" --md "$RESULTS/bench.md" \
	--gp "$OUT/bench.gp" --png "$RESULTS/bench.png" \
	--meta "date=$(date -u '+%Y-%m-%d %H:%M UTC')" \
	--meta "host=$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)" \
	--meta "host_cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
	--meta "host_kernel=$(uname -r)" --meta "host_other_cpu=${other}" \
	--meta "accel=${accel:-?}" --meta "vm=smp 2, 4G (guest level: smp 1)" \
	--meta "reps=$BENCH_REPS" --meta "runtime=${BENCH_RUNTIME}s + ${BENCH_RAMP}s ramp per run" \
	--meta "commit=$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- drivers include 2>/dev/null || echo '+uncommitted drivers/include')" ||
	{ say "report failed"; exit 1; }
gnuplot "$OUT/bench.gp" 2> "$OUT/gnuplot.log" || say "gnuplot failed: $(head -n 3 "$OUT/gnuplot.log")"

echo
cat "$RESULTS/bench.md"
echo
say "wrote $RESULTS/bench.json, $RESULTS/bench.md, $RESULTS/bench.png ($(( $(date +%s) - t0 ))s)"
exit "$rc"
