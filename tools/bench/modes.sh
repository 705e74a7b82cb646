# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# The engine-level modes of `make bench` and `make bench-icount` (sourced
# by guest-bench.sh and guest-icount.sh; needs ENGINE, the fio engine's
# path, and POLL_US, the SQ polling budget).  Every mode keeps QD I/Os in
# flight in all, so that two modes compare at the same load:
#   native           fio's io_uring engine on the backend (the limit)
#   vhost-nvme       the fio engine on the module, shadow doorbells, irqfd
#   vhost-nvme-poll  the same with the module's SQ polling (POLL_US)
#   vhost-nvme-2w    one device with two queue pairs and a worker each,
#                    the I/Os spread round robin over them (1 vs 2 workers
#                    at equal I/Os in flight)
#   userspace        the same engine and rings, a userspace controller
#                    thread with io_uring instead of the module
#   userspace-poll   the same, its thread polling the SQs (POLL_US)

# bench_mode_args MODE QD: fio's options for MODE with QD I/Os in flight
bench_mode_args() {
	local eng="--ioengine=external:$ENGINE --shadow_db=1"

	case $1 in
	native)          echo "--ioengine=io_uring --direct=1 --iodepth=$2" ;;
	vhost-nvme)      echo "$eng --iodepth=$2" ;;
	vhost-nvme-poll) echo "$eng --sq_poll_us=$POLL_US --iodepth=$2" ;;
	vhost-nvme-2w)   echo "$eng --workers=2 --nr_queues=2 --iodepth=$2" ;;
	userspace)       echo "$eng --userspace=1 --iodepth=$2" ;;
	userspace-poll)  echo "$eng --userspace=1 --sq_poll_us=$POLL_US --iodepth=$2" ;;
	*)               return 1 ;;
	esac
}
