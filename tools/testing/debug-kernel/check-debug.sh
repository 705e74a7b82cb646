#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check-debug`: the selftests, the hostile suite and a fail-nth walk of
# the setup ioctls on a debug kernel (KASAN, lockdep, DEBUG_ATOMIC_SLEEP,
# kmemleak, fault injection) in one VM:
#   deps -> debug kernel (tools/testing/debug-kernel/build.sh, cached) ->
#   vhost_nvme.ko against it -> selftests, hostile suite, fail-nth tool ->
#   tools/testing/debug-kernel/guest-debug.sh under vm-run.sh (any KASAN,
#   lockdep, WARN or BUG line on the console fails the run).
# Every step and every TAP line of the guest is a pass/fail/skip item; ends
# with "N passed, N failed, N skipped"; exits 1 if anything failed.
#
# Environment: RESULTS (default results/check-debug), HOSTILE_ARGS (default
# "-n 200000 -i 20000 -k 20 -f 20"), DEBUG_VM_TIMEOUT (seconds, 3600),
# VM_RUN_OPTS (extra vm-run.sh options), VM_ACCEL (default tcg), and those
# of build.sh (DK_CACHE, DK_NICE, DK_JOBS).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$REPO"
DKDIR=tools/testing/debug-kernel
RES=${RESULTS:-$REPO/results/check-debug}
rm -rf "$RES"
mkdir -p "$RES"
SUMMARY=$RES/summary.txt
: > "$SUMMARY"
ITEM_TAG=check-debug
# shellcheck source=../items.sh
. tools/testing/items.sh
HOSTILE_ARGS=${HOSTILE_ARGS:--n 200000 -i 20000 -k 20 -f 20}
TIMEOUT=${DEBUG_VM_TIMEOUT:-3600}

done_() {
	echo "check-debug: logs in $RES"
	echo "$PASS passed, $FAIL failed, $SKIP skipped"
	[ "$FAIL" -eq 0 ]
	exit
}

# --- deps -------------------------------------------------------------------
echo "check-debug: deps"
if run_logged "$RES/deps.log" tools/testing/deps.sh --kbuild; then
	item pass "deps"
else
	item fail "deps" "see $RES/deps.log"
	show "$RES/deps.log"
fi
# shellcheck source=../env.sh
. tools/testing/env.sh

# --- the debug kernel -----------------------------------------------------------
echo "check-debug: debug kernel (tools/testing/debug-kernel/build.sh)"
t0=$(date +%s)
if "$DKDIR/build.sh" --print-env > "$RES/kernel.env" 2> >(tee "$RES/kernel-build.log" >&2); then
	# shellcheck disable=SC1091
	. "$RES/kernel.env"
	t=$(($(date +%s) - t0))
	item pass "build debug kernel $DK_RELEASE ($((t / 60))m$((t % 60))s)"
else
	item fail "build debug kernel" "see $RES/kernel-build.log"
	done_
fi

# --- the module against it ----------------------------------------------------------
# Built in a copy of the sources (in the kernel's cache) so that the repo's
# own vhost_nvme.ko, built against Debian's kernel, stays as it is. With -g
# for scripts/decode_stacktrace.sh.
MSRC=${DK_BUILD%/*}/module
mkdir -p "$MSRC"
echo "check-debug: building vhost_nvme.ko against $DK_BUILD (in $MSRC)"
if rsync -a --delete --include '*/' --include 'Kbuild' --include 'Makefile' --include '*.c' --include '*.h' \
		--exclude '*' Kbuild drivers include "$MSRC/" &&
   run_logged "$RES/module-build.log" make -C "$DK_BUILD" M="$MSRC" KCFLAGS=-g modules &&
   [ -f "$MSRC/vhost_nvme.ko" ]; then
	item pass "build vhost_nvme.ko against $DK_RELEASE"
	if grep -qE '(warning|error):' "$RES/module-build.log"; then
		grep -E '(warning|error):' "$RES/module-build.log" | head -n 20 | sed 's/^/    /'
	fi
else
	item fail "build vhost_nvme.ko against $DK_RELEASE" "see $RES/module-build.log"
	grep -E '(warning|error):' "$RES/module-build.log" | head -n 20 | sed 's/^/    /' || true
	done_
fi

# --- userspace programs ---------------------------------------------------------------
build_prog() {	# build_prog NAME LOG MAKE-ARGS...
	local name=$1 log=$2
	shift 2
	if run_logged "$log" make "$@"; then
		item pass "build $name"
	else
		item fail "build $name" "see $log"
		show "$log"
	fi
}
build_prog selftests "$RES/selftests-build.log" -C tools/testing/selftests/vhost_nvme KSRC="$KSRC"
build_prog "hostile suite" "$RES/hostile-build.log" -C tools/testing/hostile
# guest-hostile.sh runs it against backends that fail under load
build_prog vhost-nvme-load "$RES/load-build.log" -C tools/vhost-nvme-load
build_prog vhost-nvme-fail-nth "$RES/fail-nth-build.log" -C "$DKDIR"

# --- the VM -----------------------------------------------------------------------------
# null_blk is built in: its parameters come from the command line, set to
# what the guest scripts ask modprobe for (run.sh's set, the largest).
# pci=noacpi: PCI interrupt routing from the BIOS table instead of ACPI's
# _PRT, whose AML loop runs into ACPICA's 30 s loop timeout once per virtio
# device under KASAN and TCG (a minute more per boot, then no GSI anyway).
APPEND="pci=noacpi"
APPEND+=" null_blk.nr_devices=1 null_blk.memory_backed=1 null_blk.gb=1 null_blk.discard=1"
APPEND+=" null_blk.bs=512 null_blk.cache_size=64"
VMOUT=$RES/vm
echo "check-debug: running $DKDIR/guest-debug.sh in a VM on $DK_RELEASE (timeout ${TIMEOUT}s)"
t0=$(date +%s)
# shellcheck disable=SC2086
VM_ACCEL=${VM_ACCEL:-tcg} VM_KERNEL=$DK_VMLINUX VM_MODULES_DIR=$DK_MODULES_DIR \
	tools/testing/vm/vm-run.sh ${VM_RUN_OPTS:-} --timeout "$TIMEOUT" --append "$APPEND" \
	--out "$VMOUT" "$DKDIR/guest-debug.sh" "$MSRC/vhost_nvme.ko" "$DK_MODULES_DIR" \
	$HOSTILE_ARGS 2>&1 | sed 's/^/    /' || true
t=$(($(date +%s) - t0))
if [ ! -f "$VMOUT/status" ]; then
	item fail "VM run ($((t / 60))m$((t % 60))s)" "no status; see $VMOUT/console.log"
elif [ -s "$VMOUT/warnings.txt" ]; then
	item fail "VM run without kernel warnings ($((t / 60))m$((t % 60))s)" "see $VMOUT/warnings.txt and $VMOUT/console.log"
else
	item pass "VM run without kernel warnings ($((t / 60))m$((t % 60))s)"
fi

# Also after a timeout: what the guest got through is still worth a look.
before=$FAIL
tap_items debug "$VMOUT/guest-debug.tap"
tap_items guest "$VMOUT/guest-check.tap"
tap_items selftest "$VMOUT/selftests.tap"
tap_items fail-nth "$VMOUT/fail-nth.tap"
st=$(cat "$VMOUT/status" 2>/dev/null || echo none)
if [ "$st" != 0 ] && [ "$st" != none ] && [ "$FAIL" = "$before" ]; then
	item fail "guest-debug.sh" "exit status $st without a failing TAP line"
fi
if [ -s "$VMOUT/hostile.summary" ]; then
	echo "check-debug: $(cat "$VMOUT/hostile.summary")"
fi
done_
