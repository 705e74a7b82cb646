#!/bin/bash
# shellcheck disable=SC2119 # vn_load_module takes insmod parameters; none here
# SPDX-License-Identifier: GPL-2.0
# Guest side of `make check-debug` (run by vm-run.sh on the debug kernel):
#
#   guest-debug.sh KO MODULES_DIR [HOSTILE ARGS...]
#
# KO is vhost_nvme.ko built against the debug kernel, MODULES_DIR the debug
# kernel's modules directory (modules.builtin: modprobe of the built-in
# null_blk, loop and dm_mod then succeeds, so the guest scripts run as they
# are). In order: the selftests (tools/testing/vm/guest-check.sh), the
# hostile suite (tools/testing/vm/guest-hostile.sh HOSTILE ARGS), the
# fail-nth walk of the setup ioctls (vhost-nvme-fail-nth), then kmemleak
# scans with the module unloaded, then a positive control of those scans
# (samples/kmemleak, which leaks on purpose). Writes its own items as TAP to
# $VM_OUT/guest-debug.tap (the other scripts leave guest-check.tap,
# selftests.tap, hostile.summary and fail-nth.tap next to it); kmemleak's
# report goes to kmemleak.txt, the part of it that points into the module to
# kmemleak-vhost-nvme.txt. Exits non-zero if anything failed.
# vm-run-append: trace_event=block:block_bio_queue
set -uo pipefail
: "${VM_OUT:?run this through tools/testing/vm/vm-run.sh}"
KO=${1:?usage: guest-debug.sh KO MODULES_DIR [HOSTILE ARGS...]}
MODDIR=${2:?usage: guest-debug.sh KO MODULES_DIR [HOSTILE ARGS...]}
shift 2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VMDIR=$HERE/../vm
# shellcheck source=SCRIPTDIR/../vm/guest-lib.sh
. "$VMDIR/guest-lib.sh"
FAILNTH=$HERE/vhost-nvme-fail-nth
KMEMLEAK=/sys/kernel/debug/kmemleak

TAP=$VM_OUT/guest-debug.tap
: > "$TAP"

# module_leaks REPORT OUT NAME-RE: copy the blocks of kmemleak's REPORT that
# point into a module to OUT and print their number. A block points into
# the module if a backtrace frame matches NAME-RE or is a bare address in
# the module area (0xffffffffc0000000 and up): kallsyms cannot name an
# unloaded module, nor its __init code once loaded. Only one module is
# loaded at a time here, so such an address belongs to it.
module_leaks() {
	python3 - "$@" <<'PY'
import re, sys
src, dst, names = sys.argv[1], sys.argv[2], sys.argv[3]
blocks, cur = [], []
for line in open(src, errors="replace"):
    if line.startswith("unreferenced object") and cur:
        blocks.append(cur)
        cur = []
    cur.append(line)
if cur:
    blocks.append(cur)
frame = re.compile(r"\] 0xffffffff[c-f][0-9a-f]{7}\s*$|" + names)
ours, seen = [], set()
for b in blocks:
    at = [i for i, l in enumerate(b) if "backtrace:" in l]
    if not at or not any(frame.search(l) for l in b[at[0]:]):
        continue
    key = b[0].split("(")[0]
    if key not in seen:
        seen.add(key)
        ours.append("".join(b))
open(dst, "w").write("".join(ours))
print(len(ours))
PY
}

# --- the debug kernel and its built-in drivers -------------------------------
vn_use_kernel "$KO" "$MODDIR" || vn_tap_finish

mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
if [ -w "$KMEMLEAK" ]; then
	# Forget what boot left behind: the scans below look for new leaks.
	rc=0
	{ echo scan > "$KMEMLEAK" && echo clear > "$KMEMLEAK"; } || rc=1
	result $rc "kmemleak is on; boot-time suspects cleared"
else
	result 1 "kmemleak is on (no $KMEMLEAK)"
fi

# --- selftests and the hostile suite -----------------------------------------
echo "# ---- tools/testing/vm/guest-check.sh"
# KASAN, lockdep and kmemleak make the selftests ~6x slower than on the
# stock kernel (where they take ~90 s).
SELFTEST_TIMEOUT=1800 bash "$VMDIR/guest-check.sh"
result $? "guest-check.sh (selftests; its items in guest-check.tap, selftests.tap)"

echo "# ---- tools/testing/vm/guest-hostile.sh $*"
bash "$VMDIR/guest-hostile.sh" "$@"
result $? "guest-hostile.sh $*: $(cat "$VM_OUT/hostile.summary" 2>/dev/null || echo 'no summary')"

# --- fail-nth walk of the setup ioctls ---------------------------------------
echo "# ---- fail-nth"
modbase=
if [ ! -x "$FAILNTH" ]; then
	result 1 "fail-nth walk: $FAILNTH not built"
elif ! vn_load_module; then
	result 1 "fail-nth walk: insmod vhost_nvme.ko"
else
	read -r _ modsize _ _ _ modbase _ < <(grep "^$VN_KO_NAME " /proc/modules)
	echo "# $VN_KO_NAME at $modbase, $modsize bytes"
	timeout -k 10 900 "$FAILNTH" /dev/nullb0 2>&1 | tee "$VM_OUT/fail-nth.tap"
	rc=${PIPESTATUS[0]}
	line=$(grep '^fail-nth:' "$VM_OUT/fail-nth.tap" | tail -n1)
	result "$rc" "fail-nth walk: ${line:-no summary (exit status $rc)}"
	# Leaks of the walk with the module still loaded, so that kmemleak
	# names its functions.
	if [ -w "$KMEMLEAK" ]; then
		sleep 6; echo scan > "$KMEMLEAK"; sleep 6; echo scan > "$KMEMLEAK"
		cat "$KMEMLEAK" > "$VM_OUT/kmemleak-loaded.txt"
	fi
	vn_unload_module
	result $? "rmmod vhost_nvme after the fail-nth walk"
fi

# --- kmemleak, module unloaded -------------------------------------------------
if [ -w "$KMEMLEAK" ]; then
	# Unreferenced for 5 s and unchanged between two scans: reported.
	sysctl -qw kernel.kptr_restrict=1
	sleep 6; echo scan > "$KMEMLEAK"; sleep 6; echo scan > "$KMEMLEAK"
	cat "$KMEMLEAK" "$VM_OUT/kmemleak-loaded.txt" 2>/dev/null > "$VM_OUT/kmemleak.txt"
	nleak=$(module_leaks "$VM_OUT/kmemleak.txt" "$VM_OUT/kmemleak-vhost-nvme.txt" 'vnvme|vhost_nvme')
	echo "# kmemleak: $(grep -c '^unreferenced object' "$VM_OUT/kmemleak.txt") suspects in all, $nleak pointing into vhost_nvme"
	if [ -s "$VM_OUT/kmemleak-vhost-nvme.txt" ]; then
		sed 's/^/#   /' "$VM_OUT/kmemleak-vhost-nvme.txt"
		result 1 "kmemleak: leaks from vhost_nvme (kmemleak-vhost-nvme.txt)"
	else
		result 0 "kmemleak: no leak from vhost_nvme after unload"
	fi
fi

[ -d "/sys/module/$VN_KO_NAME" ] && { rmmod "$VN_KO_NAME"; result 1 "module unloaded at the end"; }

# --- kmemleak, positive control ------------------------------------------------
# samples/kmemleak leaks a few objects on purpose in its init: the same scans
# must report them, or "no leak" above means nothing. (Last: from here on
# vhost_nvme is no longer the only module ever loaded.)
if [ -w "$KMEMLEAK" ]; then
	echo clear > "$KMEMLEAK"
	if modprobe kmemleak-test; then
		sleep 6; echo scan > "$KMEMLEAK"; sleep 6; echo scan > "$KMEMLEAK"
		cat "$KMEMLEAK" > "$VM_OUT/kmemleak-control.txt"
		rmmod kmemleak_test
		# Counted as for vhost_nvme (its leaks come from its __init code,
		# which is gone once loaded: bare addresses in the module area).
		nctl=$(module_leaks "$VM_OUT/kmemleak-control.txt" \
			"$VM_OUT/kmemleak-control-module.txt" 'kmemleak_test')
		[ "$nctl" -gt 0 ]
		result $? "kmemleak reports the deliberate leaks of samples/kmemleak ($nctl objects)"
	else
		result 1 "kmemleak control: modprobe kmemleak-test"
	fi
fi
vn_tap_finish
