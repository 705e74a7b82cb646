# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# What guest-batch.sh and guest-e2e-batch.sh share: whether a control left
# the test VM's kernel fit for the next one in the same boot.

# What a control may leave behind: none of it may outlive the control
# (its scripts set up and tear down their own backends, QEMUs and KVM;
# guest-e2e-batch.sh unloads null_blk and KVM after each control).
batch_leftovers() {
	pgrep -a qemu-system | sed 's/^/process /'
	[ ! -d /sys/module/null_blk ] || echo "null_blk loaded"
	[ ! -d /sys/module/kvm ] || echo "kvm loaded"
	find /sys/kernel/config/nullb -mindepth 1 -maxdepth 1 -printf 'nullb config %f\n' 2>/dev/null
	losetup -a 2>/dev/null | sed 's/^/loop /'
	dmsetup ls 2>/dev/null | grep -v '^No devices found' | sed 's/^/dm /'
	grep -E 'vhost-nvme|vnvme' /proc/mounts | sed 's/^/mount /'
}

# What vm-run.sh counts as a kernel warning
BATCH_WARN_RE='WARNING:|BUG:|Oops|KASAN|UBSAN|possible circular locking|lockdep|general protection|Call Trace|kernel BUG|soft lockup|hung_task|blocked for more than'

# batch_done DIR RC: the control of DIR ended with status RC: its kernel
# log and status saved; 0 if it left the kernel unfit (batch_unfit)
batch_done() {
	dmesg -c > "$1/vm/dmesg.txt"
	echo "$2" > "$1/vm/status"
	rm -f "$1/vm/running"
	echo "# ${1##*/}: exit status $2"
	batch_unfit "$1"
}

# batch_unfit DIR: 0 if the control of DIR left the kernel unfit (the
# module still loaded, something left behind, or a kernel warning in
# DIR/vm/dmesg.txt), which DIR/vm/dirty then says
batch_unfit() {
	local dir=$1 left

	left=$(batch_leftovers)
	if [ -d /sys/module/vhost_nvme ]; then
		echo "vhost_nvme is still loaded" > "$dir/vm/dirty"
	elif [ -n "$left" ]; then
		echo "left behind: $(echo "$left" | paste -sd ';')" > "$dir/vm/dirty"
	elif grep -qE "$BATCH_WARN_RE" "$dir/vm/dmesg.txt"; then
		grep -m1 -E "$BATCH_WARN_RE" "$dir/vm/dmesg.txt" > "$dir/vm/dirty"
	else
		return 1
	fi
	echo "# ${dir##*/} left the kernel unfit: $(cat "$dir/vm/dirty"); the rest in a fresh VM"
}
