#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Run the vhost-nvme selftests inside the test VM (needs root).
#
# Creates the two namespace backends the data-path tests use:
#   - /dev/nullb0: null_blk, memory backed, 1 GiB, discard, with a volatile
#     write cache so that flushes reach the driver and are counted, and
#     completing inline (irqmode=0: in submit_bio(), in the worker's own
#     pass; the loop device and the slow null_blk complete from other
#     contexts).  On 6.1
#     null_blk only advertises a write cache when cache_size > 0 (sysfs
#     "write back" is refused otherwise), which also makes it report FUA.
#   - a loop device on a 256 MiB file in /tmp (tmpfs): write cache, no
#     native FUA, discard by punching holes.
#   - a slow null_blk made through configfs (vnvme-slow, 64 MiB, memory
#     backed): every I/O completes 1 s after submission (irqmode=2), for
#     what must hold while commands sit behind a slow backend.
#   - an ext4 file system on a second loop device (160 MiB tmpfs file),
#     mounted at a temporary directory, for file namespaces on a file
#     system that can be frozen, holding a 64 MiB file for the data-path
#     tests on a file opened with O_DIRECT;
#   - a 64 MiB file on tmpfs for the data-path tests on a buffered file;
#   - vnvme-stuck, a device-mapper device (16 MiB, linear over a third loop
#     device) that the tests suspend so that it holds I/O forever;
#   - 16 huge pages (2 MiB) for guest memory made of them.
# exports VHOST_NVME_NULLB, VHOST_NVME_LOOP, VHOST_NVME_SLOW,
# VHOST_NVME_EXT4_DIR, VHOST_NVME_FILE_DIRECT, VHOST_NVME_FILE_BUFFERED,
# VHOST_NVME_STUCK and VHOST_NVME_STUCK_LOWER,
# runs the test programs in turn and removes the backends again:
#   - vhost_nvme_global: plain TEST()s with backends of their own (frozen
#     ext4, a full tmpfs, the device-mapper device, userfaultfd);
#   - vhost_nvme_ctl: the control plane's argument checking;
#   - vhost_nvme_io: the data path, one variant per backend;
#   - vhost_nvme_slow: behind the slow null_blk.
# That is the order the tests ran in when they were one program (the
# harness runs the "global" fixture first).  Extra arguments go to each
# program.  Each prints its own TAP header and plan; the exit status is
# that of the first program that failed (0 if none did), and a failure does
# not stop the later programs.

ksft_skip=4
cd "$(dirname "$0")" || exit 1

if [ "$(id -u)" -ne 0 ]; then
	echo "run.sh: must be run as root" >&2
	exit $ksft_skip
fi
# The test programs, in the order they run (see above).
PROGS="vhost_nvme_global vhost_nvme_ctl vhost_nvme_io vhost_nvme_slow"
for p in $PROGS; do
	if [ ! -x "./$p" ]; then
		echo "run.sh: ./$p not built (run make)" >&2
		exit 1
	fi
done
if [ ! -c /dev/vhost-nvme ]; then
	modprobe vhost_nvme 2>/dev/null
fi
if [ ! -c /dev/vhost-nvme ]; then
	echo "run.sh: no /dev/vhost-nvme (module vhost_nvme not loaded): skipped" >&2
	exit $ksft_skip
fi

LOOPDEV=
IMG=
NULLB_LOADED=
SLOW=/sys/kernel/config/nullb/vnvme-slow
SLOW_MADE=
EXT4_IMG= EXT4_LOOP= EXT4_DIR=
BUFFERED=
STUCK_IMG= STUCK_LOOP= STUCK_MADE=
HUGEPAGES=

cleanup() {
	[ -z "$HUGEPAGES" ] || echo "$HUGEPAGES" > /proc/sys/vm/nr_hugepages
	if [ -n "$STUCK_MADE" ]; then
		dmsetup resume vnvme-stuck 2>/dev/null
		dmsetup remove vnvme-stuck 2>/dev/null
	fi
	[ -z "$STUCK_LOOP" ] || losetup -d "$STUCK_LOOP" 2>/dev/null
	[ -z "$STUCK_IMG" ] || rm -f "$STUCK_IMG"
	[ -z "$BUFFERED" ] || rm -f "$BUFFERED"
	if [ -n "$EXT4_DIR" ]; then
		fsfreeze -u "$EXT4_DIR" 2>/dev/null
		umount "$EXT4_DIR" 2>/dev/null
		rmdir "$EXT4_DIR" 2>/dev/null
	fi
	[ -z "$EXT4_LOOP" ] || losetup -d "$EXT4_LOOP" 2>/dev/null
	[ -z "$EXT4_IMG" ] || rm -f "$EXT4_IMG"
	if [ -n "$SLOW_MADE" ]; then
		echo 0 > "$SLOW/power" 2>/dev/null
		rmdir "$SLOW" 2>/dev/null
	fi
	if [ -n "$LOOPDEV" ]; then
		losetup -d "$LOOPDEV" 2>/dev/null
	fi
	if [ -n "$IMG" ]; then
		rm -f "$IMG"
	fi
	if [ -n "$NULLB_LOADED" ]; then
		modprobe -r null_blk 2>/dev/null
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_dev() {
	i=0
	while [ ! -b "$1" ] && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ -b "$1" ]
}

# null_blk: start from a fresh instance.
modprobe -r null_blk 2>/dev/null
if modprobe null_blk nr_devices=1 memory_backed=1 gb=1 discard=1 \
		bs=512 cache_size=64 irqmode=0; then
	NULLB_LOADED=1
	if wait_dev /dev/nullb0; then
		if ! echo "write back" > /sys/block/nullb0/queue/write_cache; then
			echo "run.sh: cannot enable the nullb0 write cache" >&2
		fi
		export VHOST_NVME_NULLB=/dev/nullb0
	else
		echo "run.sh: /dev/nullb0 did not appear" >&2
	fi
else
	echo "run.sh: modprobe null_blk failed; nullb tests will be skipped" >&2
fi

# The slow null_blk: configfs names its disk after the item (6.1).
if [ -n "$NULLB_LOADED" ]; then
	mountpoint -q /sys/kernel/config ||
		mount -t configfs none /sys/kernel/config 2>/dev/null
	if mkdir "$SLOW" 2>/dev/null; then
		SLOW_MADE=1
		echo 64 > "$SLOW/size"
		echo 1 > "$SLOW/memory_backed"
		echo 2 > "$SLOW/irqmode"
		echo 1000000000 > "$SLOW/completion_nsec"
		# 1 MiB per request (not 127 KiB): a 32 MiB Write Zeroes is
		# 32 requests, all in flight at once, done in 1 s.
		echo 2048 > "$SLOW/max_sectors"
		echo 1 > "$SLOW/power"
		sdev=$(basename "$SLOW")
		[ -b "/dev/$sdev" ] || mknod "/dev/$sdev" b \
			"$(cut -d: -f1 "/sys/block/$sdev/dev")" \
			"$(cut -d: -f2 "/sys/block/$sdev/dev")" 2>/dev/null
		if wait_dev "/dev/$sdev"; then
			export VHOST_NVME_SLOW="/dev/$sdev"
		else
			echo "run.sh: the slow null_blk did not appear" >&2
		fi
	else
		echo "run.sh: cannot create a configfs null_blk; slow tests will be skipped" >&2
	fi
fi

# Loop device on a tmpfs file.
IMG=$(mktemp /tmp/vhost-nvme-loop.XXXXXX) || exit 1
if truncate -s 256M "$IMG" && LOOPDEV=$(losetup -f --show "$IMG") &&
   wait_dev "$LOOPDEV"; then
	export VHOST_NVME_LOOP="$LOOPDEV"
else
	echo "run.sh: losetup failed; loop tests will be skipped" >&2
	LOOPDEV=
fi

# ext4 on a loop device, for file namespaces on a freezable file system.
EXT4_IMG=$(mktemp /tmp/vhost-nvme-ext4.XXXXXX) || exit 1
if truncate -s 160M "$EXT4_IMG" && EXT4_LOOP=$(losetup -f --show "$EXT4_IMG") &&
   wait_dev "$EXT4_LOOP" && mkfs.ext4 -q -F "$EXT4_LOOP" >/dev/null 2>&1 &&
   EXT4_DIR=$(mktemp -d /tmp/vhost-nvme-ext4-mnt.XXXXXX) &&
   mount -t ext4 "$EXT4_LOOP" "$EXT4_DIR"; then
	export VHOST_NVME_EXT4_DIR="$EXT4_DIR"
	if fallocate -l 64M "$EXT4_DIR/io-ns.img"; then
		export VHOST_NVME_FILE_DIRECT="$EXT4_DIR/io-ns.img"
	else
		echo "run.sh: cannot make the ext4 namespace file" >&2
	fi
else
	echo "run.sh: cannot set up ext4 on a loop device; its tests will be skipped" >&2
	[ -z "$EXT4_DIR" ] || rmdir "$EXT4_DIR"
	EXT4_DIR=
fi

# A buffered file namespace on tmpfs.
BUFFERED=$(mktemp /tmp/vhost-nvme-file.XXXXXX) || exit 1
if truncate -s 64M "$BUFFERED"; then
	export VHOST_NVME_FILE_BUFFERED="$BUFFERED"
else
	echo "run.sh: cannot make the tmpfs namespace file" >&2
fi

# 2 MiB huge pages for guest memory of that kind (io.guest_memory_kinds:
# 32 MiB at a time).
HUGEPAGES=$(cat /proc/sys/vm/nr_hugepages)
if [ "$HUGEPAGES" -lt 16 ]; then
	echo 16 > /proc/sys/vm/nr_hugepages
	[ "$(cat /proc/sys/vm/nr_hugepages)" -ge 16 ] ||
		echo "run.sh: cannot reserve 16 huge pages" >&2
fi

# A device-mapper device the tests suspend: a backend that never answers.
STUCK_IMG=$(mktemp /tmp/vhost-nvme-stuck.XXXXXX) || exit 1
modprobe dm_mod 2>/dev/null
if truncate -s 16M "$STUCK_IMG" && STUCK_LOOP=$(losetup -f --show "$STUCK_IMG") &&
   wait_dev "$STUCK_LOOP" &&
   dmsetup create --noudevsync vnvme-stuck --table "0 32768 linear $STUCK_LOOP 0" &&
   STUCK_MADE=1 && dmsetup mknodes vnvme-stuck && wait_dev /dev/mapper/vnvme-stuck; then
	export VHOST_NVME_STUCK=/dev/mapper/vnvme-stuck
	export VHOST_NVME_STUCK_LOWER="$STUCK_LOOP"
else
	echo "run.sh: cannot set up the device-mapper device; its test will be skipped" >&2
fi

echo "# VHOST_NVME_NULLB=${VHOST_NVME_NULLB:-} VHOST_NVME_LOOP=${VHOST_NVME_LOOP:-}" \
     "VHOST_NVME_SLOW=${VHOST_NVME_SLOW:-}" \
     "VHOST_NVME_EXT4_DIR=${VHOST_NVME_EXT4_DIR:-}" \
     "VHOST_NVME_FILE_DIRECT=${VHOST_NVME_FILE_DIRECT:-}" \
     "VHOST_NVME_FILE_BUFFERED=${VHOST_NVME_FILE_BUFFERED:-}" \
     "VHOST_NVME_STUCK=${VHOST_NVME_STUCK:-}"
for d in ${VHOST_NVME_NULLB:-} ${VHOST_NVME_LOOP:-}; do
	n=$(basename "$d")
	echo "# $n: write_cache=$(cat /sys/block/"$n"/queue/write_cache 2>/dev/null)" \
	     "fua=$(cat /sys/block/"$n"/queue/fua 2>/dev/null)" \
	     "discard_max_bytes=$(cat /sys/block/"$n"/queue/discard_max_bytes 2>/dev/null)"
done

# A negative control's patched tree names the tests it must turn red
# (tools/testing/negative/run.sh writes ./selected): only those run.
if [ -f ./selected ]; then
	VHOST_NVME_TESTS=$(cat ./selected)
	export VHOST_NVME_TESTS
	echo "# only: $VHOST_NVME_TESTS"
fi
rc=0
for p in $PROGS; do
	echo "# ./$p"
	"./$p" "$@"
	prc=$?
	[ "$rc" -ne 0 ] || rc=$prc
done
exit $rc
