# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# The engine-level modes of `make bench` and `make bench-icount` (sourced
# by guest-bench.sh and guest-icount.sh; needs ENGINE, the fio engine's
# path, DEV, the backend, null_blk's first device with irqmode=0, and
# POLL_US, the SQ polling budget).  Every mode keeps QD I/Os in flight in
# all, so that two modes compare at the same load:
#   native           fio's io_uring engine on the backend (the limit; it
#                    completes inside the submitting system call)
#   native-softirq   the same on a null_blk that completes in a softirq
#                    (irqmode=1), and
#   native-timer     on one that completes from a timer (irqmode=2, after
#                    completion_nsec, 10 us): natives whose completions
#                    come asynchronously, as the module's do
#   vhost-nvme       the fio engine on the module, shadow doorbells, irqfd
#   vhost-nvme-poll  the same with the module's SQ polling (POLL_US)
#   vhost-nvme-2w    one device with two queue pairs and a worker each,
#                    the I/Os spread round robin over them (1 vs 2 workers
#                    at equal I/Os in flight)
#   userspace        the same engine and rings, a userspace controller
#                    thread with io_uring instead of the module
#   userspace-poll   the same, its thread polling the SQs (POLL_US)

# bench_async_backends: the null_blk devices of native-softirq and
# native-timer (configfs, the size and memory_backed of DEV's); sets
# NULLB_SOFTIRQ and NULLB_TIMER.  1 if one cannot be made.
bench_async_backends() {
	local name mode d mb disk

	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config || return 1
	mb=$(( $(blockdev --getsize64 "$DEV") >> 20 ))
	for name in softirq timer; do
		mode=1
		[ $name = timer ] && mode=2
		d=/sys/kernel/config/nullb/bench-$name
		[ -d "$d" ] || mkdir "$d" || return 1
		if [ "$(cat "$d/power")" != 1 ]; then
			echo "$mb" > "$d/size" && echo 0 > "$d/memory_backed" &&
			echo "$mode" > "$d/irqmode" && echo 1 > "$d/power" || return 1
		fi
		# The disk has the directory's name (nullbINDEX on older kernels)
		disk=${d##*/}
		[ -e "/sys/block/$disk" ] || disk=nullb$(cat "$d/index")
		# The test VM's /dev gets no node for a device made later.
		[ -b "/dev/$disk" ] ||
			mknod "/dev/$disk" b $(tr ':' ' ' < "/sys/block/$disk/dev") ||
			return 1
		printf -v "NULLB_${name^^}" '/dev/%s' "$disk"
	done
}

# bench_mode_args MODE QD: fio's options for MODE with QD I/Os in flight,
# its backend (--filename) included
bench_mode_args() {
	local eng="--filename=$DEV --ioengine=external:$ENGINE --shadow_db=1"
	local nat="--ioengine=io_uring --direct=1 --iodepth=$2"

	case $1 in
	native)          echo "--filename=$DEV $nat" ;;
	native-softirq)  echo "--filename=$NULLB_SOFTIRQ $nat" ;;
	native-timer)    echo "--filename=$NULLB_TIMER $nat" ;;
	vhost-nvme)      echo "$eng --iodepth=$2" ;;
	vhost-nvme-poll) echo "$eng --sq_poll_us=$POLL_US --iodepth=$2" ;;
	vhost-nvme-2w)   echo "$eng --workers=2 --nr_queues=2 --iodepth=$2" ;;
	userspace)       echo "$eng --userspace=1 --iodepth=$2" ;;
	userspace-poll)  echo "$eng --userspace=1 --sq_poll_us=$POLL_US --iodepth=$2" ;;
	*)               return 1 ;;
	esac
}
