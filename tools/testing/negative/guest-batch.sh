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

# What a control's backends may leave behind: none of it may outlive the
# control (the selftests' run.sh sets up and tears down its own).
leftovers() {
	[ ! -d /sys/module/null_blk ] || echo "null_blk loaded"
	find /sys/kernel/config/nullb -mindepth 1 -maxdepth 1 -printf 'nullb config %f\n' 2>/dev/null
	losetup -a 2>/dev/null | sed 's/^/loop /'
	dmsetup ls 2>/dev/null | grep -v '^No devices found' | sed 's/^/dm /'
	grep -E 'vhost-nvme|vnvme' /proc/mounts | sed 's/^/mount /'
}

# What vm-run.sh counts as a kernel warning
WARN_RE='WARNING:|BUG:|Oops|KASAN|UBSAN|possible circular locking|lockdep|general protection|Call Trace|kernel BUG|soft lockup|hung_task|blocked for more than'

for dir in "$@"; do
	[ -f "$dir/vm/status" ] && continue	# done in an earlier boot
	mkdir -p "$dir/vm"
	touch "$dir/vm/running"
	dmesg -c > /dev/null	# each control's kernel log on its own
	echo "# negative control ${dir##*/}"
	(cd "$dir/tree" && VM_OUT="$dir/vm" bash tools/testing/vm/guest-check.sh) \
		> "$dir/vm/guest.log" 2>&1
	rc=$?
	dmesg -c > "$dir/vm/dmesg.txt"
	echo "$rc" > "$dir/vm/status"
	rm -f "$dir/vm/running"
	echo "# ${dir##*/}: exit status $rc"
	left=$(leftovers)
	if [ -d /sys/module/vhost_nvme ]; then
		echo "vhost_nvme is still loaded" > "$dir/vm/dirty"
	elif [ -n "$left" ]; then
		echo "left behind: $(echo "$left" | paste -sd ';')" > "$dir/vm/dirty"
	elif grep -qE "$WARN_RE" "$dir/vm/dmesg.txt"; then
		grep -m1 -E "$WARN_RE" "$dir/vm/dmesg.txt" > "$dir/vm/dirty"
	fi
	if [ -f "$dir/vm/dirty" ]; then
		echo "# ${dir##*/} left the kernel unfit: $(cat "$dir/vm/dirty"); the rest in a fresh VM"
		exit 0
	fi
done
exit 0
