#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench-icount`: the instructions the test VM executes per I/O,
# counted instead of timed (issue 15: a TCG time spreads by 2.5x between
# runs, an instruction count does not), in two test VMs under TCG with the
# plugin
# tools/bench/icount/insn-count.c, which counts between markers the guests
# execute around each fio run:
#  1. engine level (smp 2; tools/bench/guest-icount.sh): the modes of
#     `make bench` (native io_uring, the fio engine on the module with and
#     without polling, 1 and 2 workers at equal I/Os in flight, the
#     userspace controller with and without polling);
#  2. guest level (smp 1, nested KVM; tools/bench/guest-level-icount.sh):
#     fio in a nested guest on -device vhost-nvme, QEMU's nvme, virtio-blk
#     and virtio-blk with an iothread, and fio on the backend in that VM.
# tools/bench/icount-report.py turns the counts into instructions per I/O:
# results/icount.json and results/icount.md; the plugin's logs and the
# guests' run lists in results/icount/.
#
# Environment: ICOUNT_MODES, ICOUNT_CONFIGS (RW:BS:QD words), ICOUNT_SMALL
# and ICOUNT_LARGE (the two run sizes, in I/Os: 2000 and 12000),
# ICOUNT_REPS (2), ICOUNT_POLL_US (500), ICOUNT_GUEST (1; 0 skips the guest
# level), ICOUNT_PROFILE (1: both levels also by kernel function),
# ICOUNT_GUEST_DEVICES: see the two guest scripts; ICOUNT_QEMU: the test
# VMs' QEMU (default: the project's QEMU 10.0 build, which the guest level
# needs: on Debian's 7.2 the nested guest froze at its first boot).  A
# QEMU 9 or later gets the plugin for ABI 4, whose counters are per vCPU,
# and multi-threaded TCG (on the 10.0.13 build any inline counter, QEMU's
# own tests/tcg/plugins/bb.c's too, crashed the test VM's kernel at boot
# under thread=single); an older one (ICOUNT_QEMU=qemu-system-x86_64,
# Debian's 7.2) plugin ABI 1 under -accel tcg,thread=single, so that its
# plain counters have one writer.  Engine level, 2026-12-07: the two agree
# within 3%, and two runs on 10.0 within 0.5-2.7%.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
RESULTS=${RESULTS:-$REPO/results}
OUT=$RESULTS/icount
say() { echo "icount: $*"; }
rm -rf "$OUT"
mkdir -p "$OUT/vm" "$OUT/vm-guest"

say "deps"
tools/testing/deps.sh > "$OUT/deps.log" 2>&1 || { cat "$OUT/deps.log"; exit 1; }
# shellcheck source=../testing/env.sh
. tools/testing/env.sh
say "building the plugin and the marker"
B=tools/bench/icount/build
mkdir -p "$B"
if [ -n "${ICOUNT_QEMU:-}" ]; then
	VM_QEMU_BIN=$ICOUNT_QEMU
else
	say "building QEMU (tools/qemu/build-qemu.sh; cached)"
	VM_QEMU_BIN=$(tools/qemu/build-qemu.sh 2> "$OUT/build-qemu-vm.log" | tail -n1) &&
		[ -x "$VM_QEMU_BIN" ] || { cat "$OUT/build-qemu-vm.log"; exit 1; }
fi
export VM_QEMU_BIN
abi=1 accel=tcg,thread=single
major=$("$VM_QEMU_BIN" --version | sed -n '1s/.*version \([0-9]*\)\..*/\1/p')
[ "${major:-0}" -ge 9 ] && abi=4 accel=tcg
gcc -DICOUNT_ABI=$abi -O2 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden \
	-o "$B/insn-count.so" tools/bench/icount/insn-count.c
gcc -O2 -Wall -Wextra -Werror -static -o "$B/mark" tools/bench/icount/mark.c

GUEST=${ICOUNT_GUEST:-1}
# shellcheck source=lib.sh
. tools/bench/lib.sh
bench_build "$OUT" "$GUEST" || exit 1

for v in ICOUNT_MODES ICOUNT_CONFIGS ICOUNT_SMALL ICOUNT_LARGE ICOUNT_REPS \
	 ICOUNT_POLL_US ICOUNT_GUEST_DEVICES; do
	[ -n "${!v:-}" ] && printf '%s=%q\n' "$v" "${!v}"
done > "$OUT/vm/icount.env"
cp "$OUT/vm/icount.env" "$OUT/vm-guest/icount.env"
rc=0
counted() {	# counted LOG PLUGIN-ARGS VM-RUN-ARGS...: vm-run.sh under the plugin
	local log=$1 args=$2
	shift 2
	VM_ACCEL=$accel \
	VM_QEMU_OPTS="-plugin $REPO/$B/insn-count.so$args -d plugin -D $log" \
		tools/testing/vm/vm-run.sh "$@"
}
say "engine level: the test VM, every vCPU on one thread, counted"
# Both levels also count by kernel function (the plugin's profile=on, the
# test VMs' kallsyms, and at guest level the nested kernel's symbols);
# ICOUNT_PROFILE=0 leaves it out.
prof=
[ "${ICOUNT_PROFILE:-1}" = 1 ] && prof=,profile=on
counted "$OUT/plugin.log" "$prof" --smp 2 --timeout 3600 --out "$OUT/vm" \
	tools/bench/guest-icount.sh || rc=$?
grep -h '^icount: .*FAILED' "$OUT/vm/guest.log" || true
runs=$OUT/vm/icount-runs.txt logs=$OUT/plugin.log
if [ "$GUEST" = 1 ]; then
	say "guest level: nested guests in a test VM with one vCPU, counted"
	# The nested guest boots the kernel the test VM boots.
	L2_KERNEL=$VN_CACHE/vm/vmlinux-$KVER
	[ -s "$L2_KERNEL" ] || L2_KERNEL=$VMLINUZ
	counted "$OUT/plugin-guest.log" "$prof" --smp 1 --timeout 5400 --idle 300 --out "$OUT/vm-guest" \
		tools/bench/guest-level-icount.sh "$QEMU" "$L2_KERNEL" "$INITRD" ||
		rc=$?
	grep -h '^icount: .*FAILED' "$OUT/vm-guest/guest.log" || true
	runs+=",$OUT/vm-guest/icount-runs.txt" logs+=",$OUT/plugin-guest.log"
fi
python3 tools/bench/icount-report.py "$runs" "$logs" "$RESULTS/icount" \
	"$OUT/vm/kallsyms" "$OUT/vm-guest/kallsyms" || rc=1
say "results in $RESULTS/icount.md"
exit "$rc"
