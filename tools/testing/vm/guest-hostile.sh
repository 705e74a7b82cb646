#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of the hostile suite (run by vm-run.sh): load vhost_nvme.ko,
# run tools/testing/hostile/vhost-nvme-hostile against null_blk, a
# device-mapper error target, a slow backend (dm-delay, 200 ms, over a
# null_blk with discard), one that holds I/O (a dm device it suspends) and
# one with a volatile write cache (a null_blk it power-cycles), in a memory
# cgroup of its own, unload the module,
# and print
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

# The slow backend of the exhaust phase: dm-delay, 200 ms per bio, over a
# memory-backed null_blk with discard.  (A null_blk whose own timer delays
# every request left a few requests of the exhaust phase uncompleted for
# minutes, now and then: see the issue's notes.)
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
ex=/sys/kernel/config/nullb/vnvme-exhaust
if mkdir "$ex" && echo 1 > "$ex/memory_backed" && echo 1 > "$ex/discard" &&
   echo 1024 > "$ex/size" && echo 1 > "$ex/power"; then
	[ -b /dev/vnvme-exhaust ] || mknod /dev/vnvme-exhaust b \
		"$(cut -d: -f1 /sys/block/vnvme-exhaust/dev)" \
		"$(cut -d: -f2 /sys/block/vnvme-exhaust/dev)"
else
	echo "hostile: cannot create the exhaust null_blk device"; exit 1
fi
dmsetup create --noudevsync vnvme-delay \
	--table "0 2097152 delay /dev/vnvme-exhaust 0 200" &&
	dmsetup mknodes vnvme-delay || exit 1
# The stall phase's backend that holds I/O: the suite suspends it without
# flushing (bios queue in device-mapper) and resumes it after each round.
dmsetup create --noudevsync vnvme-hstuck \
	--table "0 65536 linear /dev/nullb0 1048576" &&
	dmsetup mknodes vnvme-hstuck || exit 1
# The safety phase's backend: a null_blk with a volatile write cache (64
# MiB), which the suite powers off and on to lose what is only in it.
wc=/sys/kernel/config/nullb/vnvme-wc
if ! { mkdir "$wc" && echo 1 > "$wc/memory_backed" && echo 256 > "$wc/size" &&
       echo 64 > "$wc/cache_size" && echo 1 > "$wc/power"; }; then
	echo "hostile: cannot create the write-cache null_blk device"; exit 1
fi
# A memory cgroup of its own: the exhaust phase checks its charge.
CG=/sys/fs/cgroup
[ -e $CG/cgroup.controllers ] || mount -t cgroup2 none $CG
echo +memory > $CG/cgroup.subtree_control 2>/dev/null
mkdir -p $CG/vnvme-hostile

# shellcheck disable=SC2016
sh -c 'echo $$ > /sys/fs/cgroup/vnvme-hostile/cgroup.procs && exec "$0" "$@"' \
	"$HOSTILE" "$@" -x /dev/mapper/vnvme-delay -S /dev/mapper/vnvme-hstuck -W "$wc" \
	/dev/nullb0 /dev/mapper/vnvme-bad |
	tee "$VM_OUT/hostile.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
dmsetup remove vnvme-delay
dmsetup resume vnvme-hstuck 2>/dev/null
dmsetup remove vnvme-hstuck
echo 0 > "$ex/power"; rmdir "$ex"
echo 0 > "$wc/power"; rmdir "$wc"
rmdir $CG/vnvme-hostile 2>/dev/null

# Backends that fail under load: every command must still complete (with an
# error status), never hang.  Prints the number of failed commands.
LOAD=tools/vhost-nvme-load/vhost-nvme-load
under_load() {	# under_load NAME DEV BREAK-CMD
	local out=$VM_OUT/$1.txt errs bad
	timeout -k 5 60 "$LOAD" --seconds 6 --qd 16 --span 32 "$2" > "$out" 2>&1 &
	local pid=$! i
	# break it only once I/O is flowing (the tool prints IOPS each second)
	for i in $(seq 300); do
		grep -q IOPS "$out" 2>/dev/null && break
		sleep 0.1
	done
	eval "$3"
	wait "$pid"
	if grep -q '^timeout' "$out" || ! grep -q 'errors' "$out"; then
		echo "hostile: $1: commands lost or tool hung:" >&2
		tail -n 5 "$out" >&2
		return 1
	fi
	errs=$(sed -n 's/.*, errors \([0-9]*\),.*/\1/p' "$out")
	bad=$(sed -n 's/.*, mismatches \([0-9]*\).*/\1/p' "$out")
	echo "# $1: $(grep -m1 commands "$out" | sed 's/^ *//')"
	[ "${errs:-0}" -gt 0 ] || { echo "hostile: $1: no command failed" >&2; return 1; }
	# A read that succeeds returns what was last written successfully.
	[ "${bad:-x}" = 0 ] || { echo "hostile: $1: ${bad:-?} reads returned wrong data" >&2; return 1; }
	extra_faults=$((extra_faults + errs))
}
extra_faults=0

# Only some of the program's phases (-p, a negative control's lane): not
# the failing backends under load either.
case " $* " in
*" -p "*) LOAD_RUNS=0 ;;
*) LOAD_RUNS=1 ;;
esac

# A null_blk device powered off (configfs) while commands are in flight.
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
nb=/sys/kernel/config/nullb/vnvme-vanish
if [ $LOAD_RUNS = 0 ]; then
	echo "# -p: no runs under load"
elif mkdir "$nb" 2>/dev/null; then
	echo 1 > "$nb/memory_backed"; echo 256 > "$nb/size"; echo 1 > "$nb/power"
	vdev=${nb##*/}	# 6.1 names a configfs null_blk disk after its item
	# no udev: make the node if devtmpfs has not
	[ -b "/dev/$vdev" ] || mknod "/dev/$vdev" b \
		"$(cut -d: -f1 "/sys/block/$vdev/dev")" "$(cut -d: -f2 "/sys/block/$vdev/dev")"
	under_load vanish "/dev/$vdev" "echo 0 > $nb/power" || rc=1
	rmdir "$nb"
else
	echo "hostile: cannot create a configfs null_blk device"; rc=1
fi
# A device-mapper flakey target: up 1 s, down 1 s (all I/O fails).
if [ $LOAD_RUNS = 0 ]; then
	:
elif dmsetup create --noudevsync vnvme-flakey \
	--table "0 65536 flakey /dev/nullb0 0 1 1" && dmsetup mknodes vnvme-flakey; then
	under_load flakey /dev/mapper/vnvme-flakey : || rc=1
	dmsetup remove vnvme-flakey
else
	echo "hostile: cannot create a flakey target"; rc=1
fi

vn_unload_module || { echo "hostile: rmmod vhost_nvme failed"; rc=1; }
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
# Add the failed commands of the vanish and flakey runs to the faults.
faults=${line##*kills, }
faults=${faults%% faults}
line="${line%, * faults}, $((faults + extra_faults)) faults"
echo "$line, $warn kernel warnings" | tee "$VM_OUT/hostile.summary"
[ "$warn" -eq 0 ] || rc=1
exit "$rc"
