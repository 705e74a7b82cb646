#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of `make check-kernels` (run by vm-run.sh on a Debian kernel
# other than 6.1's: trixie's 6.12, sid's newest):
#
#   guest-kernel.sh KO MODULES_DIR [HOSTILE ARGS...]
#
# KO is vhost_nvme.ko built for the running kernel, MODULES_DIR that
# kernel's modules directory (from its suite's chroot). Runs the selftests
# (guest-check.sh) and the hostile suite (guest-hostile.sh HOSTILE ARGS).
# Its own items go as TAP to $VM_OUT/guest-kernel.tap; guest-check.tap,
# selftests.tap and hostile.summary are left next to it. Exits non-zero if
# anything failed.
# vm-run-append: trace_event=block:block_bio_queue
set -uo pipefail
: "${VM_OUT:?run this through tools/testing/vm/vm-run.sh}"
KO=${1:?usage: guest-kernel.sh KO MODULES_DIR [HOSTILE ARGS...]}
MODDIR=${2:?usage: guest-kernel.sh KO MODULES_DIR [HOSTILE ARGS...]}
shift 2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=guest-lib.sh
. "$HERE/guest-lib.sh"

TAP=$VM_OUT/guest-kernel.tap
: > "$TAP"

vn_use_kernel "$KO" "$MODDIR" || vn_tap_finish

echo "# ---- tools/testing/vm/guest-check.sh"
bash "$HERE/guest-check.sh"
result $? "guest-check.sh (selftests; its items in guest-check.tap, selftests.tap)"

echo "# ---- tools/testing/vm/guest-hostile.sh $*"
bash "$HERE/guest-hostile.sh" "$@"
result $? "guest-hostile.sh $*: $(cat "$VM_OUT/hostile.summary" 2>/dev/null || echo 'no summary')"

vn_tap_finish
