#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of `make run` (run by vm-run.sh with the module and
# tools/vhost-nvme-load built): loads vhost_nvme.ko and pushes a verified
# random read/write workload through /dev/vhost-nvme to a null_blk device
# and to a loop device over a file, in both doorbell modes.
set -euo pipefail
: "${VM_OUT:?run this through tools/testing/run.sh or vm/vm-run.sh}"
# shellcheck source=guest-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/guest-lib.sh"

LOAD=tools/vhost-nvme-load/vhost-nvme-load
SECS=${1:-5}	# seconds per job: tools/testing/run.sh SECONDS

echo "guest-run: loading vhost_nvme.ko"
vn_load_module
modprobe null_blk nr_devices=1 memory_backed=1 gb=1
modprobe loop
truncate -s 256M /tmp/backing.img
loopdev=$(losetup -f --show --direct-io=on /tmp/backing.img 2>/dev/null ||
	  losetup -f --show /tmp/backing.img)

rc=0
for dev in /dev/nullb0 "$loopdev"; do
	for mode in "" --shadow; do
		for qd in 1 16; do
			echo "guest-run: $dev qd=$qd ${mode:-VMM doorbells}"
			"$LOAD" --seconds "$SECS" --qd "$qd" $mode "$dev" || rc=1
		done
	done
done

losetup -d "$loopdev"
vn_unload_module
rmmod null_blk
exit "$rc"
