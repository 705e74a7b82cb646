#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench`: deps, module and fio engine builds, then one VM (vm-run.sh,
# smp 2) running tools/bench/guest-bench.sh: 4K random read IOPS and p50/p99
# latency at QD 1/4/16/64 and 128K sequential read bandwidth on a null_blk
# (memory_backed=0 irqmode=0) for native io_uring, the fio engine on the
# module (notification, polling, 2 jobs) and the engine's userspace
# controller, interleaved and repeated. Writes results/bench.json (medians,
# one record per mode/rw/bs/qd), results/bench.md (tables with every
# figure's ratio to native) and results/bench.png (gnuplot); raw fio output
# in results/bench/.
#
# Environment: BENCH_RUNTIME (s per run, 3), BENCH_RAMP (1), BENCH_REPS (3),
# BENCH_QDS ("1 4 16 64"), BENCH_SEQ_QD (16), BENCH_POLL_US (50),
# BENCH_MODES (all five), VM_RUN_OPTS (extra vm-run.sh options).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
RESULTS=${RESULTS:-$REPO/results}
OUT=$RESULTS/bench
say() { echo "bench: $*"; }
t0=$(date +%s)

mkdir -p "$OUT"
say "deps"
tools/testing/deps.sh > "$OUT/deps.log" 2>&1 || { cat "$OUT/deps.log"; exit 1; }
if [ "$(dpkg-query -W -f='${Status}' gnuplot-nox 2>/dev/null)" != "install ok installed" ]; then
	say "installing gnuplot-nox"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		-o Dpkg::Use-Pty=0 gnuplot-nox; } >> "$OUT/deps.log" 2>&1 ||
		{ tail -n 20 "$OUT/deps.log"; exit 1; }
fi
# shellcheck source=../testing/env.sh
. tools/testing/env.sh

say "building the module against $KDIR"
make -C "$KDIR" M="$REPO" modules > "$OUT/build.log" 2>&1 ||
	{ tail -n 30 "$OUT/build.log"; say "module build failed"; exit 1; }
say "building the fio engine (fio's source headers are fetched once)"
make -C tools/fio-vhost-nvme > "$OUT/build-engine.log" 2>&1 ||
	{ tail -n 30 "$OUT/build-engine.log"; say "engine build failed"; exit 1; }

export BENCH_RUNTIME=${BENCH_RUNTIME:-3} BENCH_RAMP=${BENCH_RAMP:-1} BENCH_REPS=${BENCH_REPS:-3}
export BENCH_QDS=${BENCH_QDS:-1 4 16 64} BENCH_SEQ_QD=${BENCH_SEQ_QD:-16}
export BENCH_POLL_US=${BENCH_POLL_US:-50}
[ -n "${BENCH_MODES:-}" ] && export BENCH_MODES
# The guest inherits nothing from here but the job file: pass the settings
# through a file in the output share that the guest script reads.
VMOUT=$OUT/vm
rm -rf "$VMOUT"
mkdir -p "$VMOUT"
env | grep -E '^BENCH_' | sed -E "s/^([A-Z_]+)=(.*)$/export \1='\2'/" > "$VMOUT/bench.env"

nq=$(wc -w <<< "$BENCH_QDS")
nm=$(wc -w <<< "${BENCH_MODES:-a b c d e}")
runs=$((BENCH_REPS * (nq + 1) * nm))
# fio under TCG needs a few seconds beyond runtime + ramp to start and stop.
budget=$((runs * (BENCH_RUNTIME + BENCH_RAMP + 8) + 300))
say "booting the VM: $runs fio runs, about $((runs * (BENCH_RUNTIME + BENCH_RAMP + 3) / 60)) min (timeout ${budget}s)"

# How busy the host is with other work while our VM runs: CPU time of
# everything but our QEMU (found by its --out path), sampled every 5 s.
busy_sampler() {
	local pid ticks t0 b0 q0 t b q qt hz
	hz=$(getconf CLK_TCK)
	read -r _ a b c _ < /proc/stat
	b0=$((a + b + c)) t0=$(date +%s.%N) q0=
	while sleep 5; do
		pid=$(pgrep -f -- "^qemu-system-x86_64 .*path=$VMOUT/console.log" | head -n1) || continue
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
			'BEGIN { v = 100 * x / hz / (t - t0) / n; printf "%.0f\n", v < 0 ? 0 : v }' \
			> "$OUT/host-other-cpu.txt"
	done
}
rm -f "$OUT/host-other-cpu.txt"
busy_sampler &
samplerpid=$!

# Progress: follow the guest's log (written through the output share).
tail -n +1 -F "$VMOUT/guest.log" 2>/dev/null | grep --line-buffered '^bench:' &
tailpid=$!
rc=0
# shellcheck disable=SC2086
tools/testing/vm/vm-run.sh --smp 2 --timeout "$budget" ${VM_RUN_OPTS:-} --out "$VMOUT" \
	tools/bench/guest-bench.sh > "$OUT/vm-run.log" 2>&1 || rc=$?
sleep 1
kill "$tailpid" "$samplerpid" 2>/dev/null || true
wait "$tailpid" "$samplerpid" 2>/dev/null || true
other=$(cat "$OUT/host-other-cpu.txt" 2>/dev/null || echo '?')
say "other work on the host used ${other}% of its CPU while the VM ran"
if [ "$other" != '?' ] && [ "$other" -ge 10 ]; then
	echo "the host was busy with other work during the run (${other}% of its CPU besides this VM): figures are depressed and noisy" >> "$VMOUT/notes.txt"
fi
grep -E 'boot|exited|FAIL' "$OUT/vm-run.log" | sed 's/^/bench: /' || true
if [ ! -d "$VMOUT/raw" ]; then
	say "no results (see $OUT/vm-run.log and $VMOUT/console.log)"
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
	--meta "host_kernel=$(uname -r)" --meta "host_other_cpu=${other}%" \
	--meta "accel=${accel:-?}" --meta "vm=smp 2, 4G" \
	--meta "reps=$BENCH_REPS" --meta "runtime=${BENCH_RUNTIME}s + ${BENCH_RAMP}s ramp per run" \
	--meta "commit=$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- drivers include 2>/dev/null || echo '+uncommitted drivers/include')" ||
	{ say "report failed"; exit 1; }
gnuplot "$OUT/bench.gp" 2> "$OUT/gnuplot.log" || say "gnuplot failed: $(head -n 3 "$OUT/gnuplot.log")"

echo
cat "$RESULTS/bench.md"
echo
say "wrote $RESULTS/bench.json, $RESULTS/bench.md, $RESULTS/bench.png ($(( $(date +%s) - t0 ))s)"
exit "$rc"
