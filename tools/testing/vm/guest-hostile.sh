#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of the hostile suite (run by vm-run.sh): load vhost_nvme.ko,
# run tools/testing/hostile/vhost-nvme-hostile against null_blk and a
# device-mapper error target, unload the module, and print
#   hostile: N commands, N ioctls, N kills, N faults, N kernel warnings
# Arguments are passed to vhost-nvme-hostile (e.g. -n 100000).
set -uo pipefail
: "${VM_OUT:?run this through tools/testing/vm/vm-run.sh}"
# shellcheck source=guest-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/guest-lib.sh"

HOSTILE=tools/testing/hostile/vhost-nvme-hostile
rc=0

modprobe null_blk nr_devices=1 memory_backed=1 gb=1 || exit 1
modprobe dm_mod 2>/dev/null
dmsetup create --noudevsync vnvme-bad --table "0 65536 error" &&
	dmsetup mknodes vnvme-bad || exit 1
vn_load_module || exit 1
slab0=$(awk '/^SUnreclaim:/ {print $2}' /proc/meminfo)

"$HOSTILE" "$@" /dev/nullb0 /dev/mapper/vnvme-bad | tee "$VM_OUT/hostile.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1

rmmod vhost_nvme || { echo "hostile: rmmod vhost_nvme failed"; rc=1; }
slab1=$(awk '/^SUnreclaim:/ {print $2}' /proc/meminfo)
echo "# unreclaimable slab: ${slab0} kB before load, ${slab1} kB after unload"
dmsetup remove vnvme-bad
rmmod null_blk

warn=$(dmesg | grep -cE 'WARNING:|BUG:|Oops|KASAN|UBSAN|possible circular locking|Call Trace|soft lockup|blocked for more than')
line=$(grep '^hostile:' "$VM_OUT/hostile.txt" | tail -n1)
if [ -z "$line" ]; then
	echo "hostile: the program printed no summary"
	exit 1
fi
line=${line%, * errors}
echo "$line, $warn kernel warnings" | tee "$VM_OUT/hostile.summary"
[ "$warn" -eq 0 ] || rc=1
exit "$rc"
