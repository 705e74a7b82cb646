#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# PID 1 of the vm-run.sh guest after switch_root into the host's filesystem
# (read-only 9p + tmpfs overlay). Runs the job described in
# /run/vmrun/out/.vmrun/job, records its exit status and powers off.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8 SHELL=/bin/bash

off() {
	sync
	if command -v busybox >/dev/null; then busybox poweroff -f; fi
	echo o > /proc/sysrq-trigger
	sleep 60
}

mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
echo 1 > /proc/sys/kernel/sysrq
# Boot is quiet (loglevel=4); from now on show warnings on the console too.
echo 5 > /proc/sys/kernel/printk
hostname vmrun 2>/dev/null
ip link set lo up 2>/dev/null

job=/run/vmrun/out/.vmrun/job
if [ ! -r "$job" ]; then
	echo "VMRUN: no job file"; off
fi
VMRUN_CWD='' VMRUN_OUT='' VMRUN_TIMEOUT='' VMRUN_REPO_SHARE=''
VMRUN_ARGV=()
# shellcheck disable=SC1090
. "$job"
# A repo under the guest's own /tmp or /run: mount its share at its path,
# read-only with a tmpfs overlay like the root.
if [ -n "$VMRUN_REPO_SHARE" ]; then
	r=/run/vmrun/repo
	mkdir -p $r/lower $r/upper $r/work "$VMRUN_REPO_SHARE"
	if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro \
			vmrepo $r/lower ||
	   ! mount -t overlay -o lowerdir=$r/lower,upperdir=$r/upper,workdir=$r/work \
			overlay "$VMRUN_REPO_SHARE"; then
		echo "VMRUN: cannot mount the repo share at $VMRUN_REPO_SHARE"
		off
	fi
fi
if ! mkdir -p "$VMRUN_OUT" || ! mount --bind /run/vmrun/out "$VMRUN_OUT"; then
	echo "VMRUN: cannot bind the output share at $VMRUN_OUT"
	off
fi
meta=$VMRUN_OUT/.vmrun

(
	sleep "$VMRUN_TIMEOUT"
	echo "VMRUN: guest watchdog expired after ${VMRUN_TIMEOUT}s; blocked tasks:"
	echo w > /proc/sysrq-trigger
	sleep 1
	dmesg > "$VMRUN_OUT/dmesg.txt" 2>&1
	touch "$meta/watchdog"
	off
) &

# A heartbeat on the second serial port (vm-run.sh's .vmrun/heartbeat),
# every 15 s: uptime, and every task in uninterruptible sleep with its
# kernel stack. Bash builtins and /proc only, nothing on 9p: when the
# console goes silent it tells a frozen VM (no heartbeat) from a script
# that is blocked (a heartbeat naming where).
heartbeat() {
	local zz p st comm w f out
	exec {zz}<> <(:)
	while :; do
		read -r -t 15 -u "$zz"
		read -r w _ < /proc/uptime
		out="VMRUN-HB up=$w"
		for p in /proc/[0-9]*; do
			read -r st < "$p/stat" 2>/dev/null || continue
			st=${st##*) }
			[ "${st:0:1}" = D ] || continue
			read -r comm < "$p/comm"
			w=
			while read -r f; do
				f=${f#* }
				w+="${w:+<}${f%%+*}"
			done < "$p/stack"
			out+=" | ${p#/proc/} $comm: $w"
		done
		echo "$out" > /dev/ttyS1
	done
}
[ -c /dev/ttyS1 ] && heartbeat 2>/dev/null &

read -r up _ < /proc/uptime
touch "$meta/ready"
echo "VMRUN: ready (guest uptime ${up}s), running: ${VMRUN_ARGV[*]}"

rc=0
cd "$VMRUN_CWD" || rc=125
if [ $rc -eq 0 ]; then
	VM_OUT=$VMRUN_OUT bash "${VMRUN_ARGV[@]}" < /dev/null 2>&1 |
		tee "$VMRUN_OUT/guest.log"
	rc=${PIPESTATUS[0]}
fi
dmesg > "$VMRUN_OUT/dmesg.txt" 2>&1
echo "$rc" > "$VMRUN_OUT/status"
sync
echo "VMRUN: END status=$rc"
off
