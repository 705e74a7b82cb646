#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of the negative controls' selftest lane (run by
# tools/testing/negative/run.sh through vm-run.sh): several controls in one
# boot.  For each control directory DIR (its patched tree in DIR/tree, built
# on the host), run DIR/tree's guest-check.sh with VM_OUT=DIR/vm, from that
# tree: its module is loaded, its selected selftests run, it is unloaded.
# DIR/vm/status gets the script's exit status.
#
# A control that leaves the kernel unfit for the next one ends the boot:
# vhost_nvme still loaded, a backend left behind (null_blk, a loop or dm
# device, a mount), or a kernel warning, a lockup, a hung task in its dmesg
# (DIR/vm/dirty says which).  The next controls then run in a
# fresh VM, so no control is judged on a kernel another one broke.  A
# control that was running when the VM died is marked DIR/vm/running.
#
# The selftests read the block_bio_queue tracepoint (see guest-check.sh).
# vm-run-append: trace_event=block:block_bio_queue
set -uo pipefail
: "${VM_OUT:?run this through tools/testing/vm/vm-run.sh}"

# shellcheck source=batch-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/batch-lib.sh"

for dir in "$@"; do
	[ -f "$dir/vm/status" ] && continue	# done in an earlier boot
	mkdir -p "$dir/vm"
	touch "$dir/vm/running"
	dmesg -c > /dev/null	# each control's kernel log on its own
	echo "# negative control ${dir##*/}"
	(cd "$dir/tree" && VM_OUT="$dir/vm" bash tools/testing/vm/guest-check.sh) \
		> "$dir/vm/guest.log" 2>&1
	rc=$?
	batch_done "$dir" "$rc" && exit 0
done
exit 0
