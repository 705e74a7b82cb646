#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the nested (L2) guest on /dev/nvme0n1, a -device vhost-nvme
# namespace. Busybox sh. Prints one line per result:
#   E2E-TAP ok - DESCRIPTION            E2E-TAP not ok - DESCRIPTION: DETAIL
# plus E2E-INFO lines (progress, figures) and the lines the test VM checks
# against the backend after power-off (E2E-RAW, E2E-FILE).
# Usage: l2-tests.sh full|tcg|bench|config|slow|ns|migrate|icount
# Kernel command line: e2e.serial=S e2e.nsze=N (expected values); bench
# only: e2e.dev= (the disk, e.g. /dev/vda for the virtio-blk baseline),
# e2e.bench=RW:BS:QD,... (fio runs, JSON output), e2e.secs= and e2e.ramp=
# (runtime and ramp of each, in seconds); migrate only: e2e.dev= as for
# bench, e2e.migsecs= (the longest the workload waits for the test VM's stop).
MODE=${1:-full}
DEV=/dev/nvme0n1
CTRL=/dev/nvme0
SERIAL=
NSZE=
BENCH=
SECS=${E2E_BENCH_SECS:-8}
RAMP=1
MIGSECS=900
ICOUNT=
ICOUNT_IOS=2000:12000
ICOUNT_REPS=2
for a in $(cat /proc/cmdline); do
	case $a in
	e2e.serial=*) SERIAL=${a#e2e.serial=} ;;
	e2e.nsze=*) NSZE=${a#e2e.nsze=} ;;
	e2e.dev=*) DEV=${a#e2e.dev=} ;;
	e2e.bench=*) BENCH=${a#e2e.bench=} ;;
	e2e.secs=*) SECS=${a#e2e.secs=} ;;
	e2e.ramp=*) RAMP=${a#e2e.ramp=} ;;
	e2e.migsecs=*) MIGSECS=${a#e2e.migsecs=} ;;
	e2e.icount=*) ICOUNT=${a#e2e.icount=} ;;
	e2e.ios=*) ICOUNT_IOS=${a#e2e.ios=} ;;
	e2e.reps=*) ICOUNT_REPS=${a#e2e.reps=} ;;
	esac
done
FAILS=0

ok() { echo "E2E-TAP ok - $*"; }
notok() { FAILS=$((FAILS + 1)); echo "E2E-TAP not ok - $*"; }
info() { echo "E2E-INFO $*"; }
# show FILE: the file, indented, as info lines
show() { sed 's/^/E2E-INFO   /' "$1" | head -n "${2:-20}"; }
# field FILE NAME: value of "NAME : value" in nvme-cli output
field() {
	awk -F: -v k="$2" '{ n = $1; gsub(/^[ \t]+|[ \t]+$/, "", n) }
		n == k { v = substr($0, index($0, ":") + 1); gsub(/^[ \t]+|[ \t]+$/, "", v); print v; exit }' "$1"
}
# smart_n FILE NAME: a counter of `nvme smart-log` output, as a number
# (nvme-cli 2.4 prints "Data Units Read : 33 (16.90 MB)", others
# data_units_read, thousands with commas)
smart_n() {
	{ field "$1" "$2"; field "$1" "$(echo "$2" | tr 'A-Z ' 'a-z_')"; } |
		tr -d , | awk 'NF { print $1 + 0; exit }'
}
getf() {	# getf FID [ARGS]: the current value
	nvme get-feature $CTRL -f "$@" 2>&1 | sed -n 's/.*Current value: *\([0-9a-fA-Fx]*\).*/\1/p' | head -n1
}
# expect DESC FILE NAME VALUE...: the field equals one of the values
expect() {
	desc=$1 f=$2 k=$3
	shift 3
	v=$(field "$f" "$k")
	for want in "$@"; do
		[ "$v" = "$want" ] && return 0
	done
	echo "E2E-INFO   $desc: $k is '$v', expected $*"
	return 1
}

fio_run() {	# fio_run NAME ARGS...: fio on $DEV; output in /tmp/fio.NAME
	name=$1
	shift
	fio --name="$name" --filename=$DEV --direct=1 --ioengine=io_uring --thread \
		--group_reporting "$@" > "/tmp/fio.$name" 2>&1
}
fio_figures() {	# one line of IOPS and mean latency per direction
	grep -E '^ +(read|write): IOPS=|^ +lat \(.sec\): .*avg=' "/tmp/fio.$1" |
		sed -E 's/^ +//; s/, stdev.*//' | tr '\n' ' '
}
fio_max_ms() {	# fio_max_ms NAME: the longest I/O (total latency) of a run, in ms
	awk '/^ +lat \((n|u|m)sec\): / {
		m = $4; sub(/^max=/, "", m); sub(/,$/, "", m)
		f = 1
		if (m ~ /k$/) f = 1000
		if (m ~ /M$/) f = 1000000
		sub(/[kM]$/, "", m)
		v = m * f
		if ($2 ~ /usec/) v /= 1000
		if ($2 ~ /nsec/) v /= 1000000
		printf "%d\n", v
		exit
	}' "/tmp/fio.$1"
}
fio_verify() {	# fio_verify BS QD SIZE OFFSET
	name=v-$1-qd$2
	if fio_run "$name" --rw=randwrite --bs="$1" --iodepth="$2" --size="$3" \
			--offset="$4" --verify=crc32c --do_verify=1 --verify_fatal=1 &&
	   ! grep -qi 'verify.*bad\|crc32c.*mismatch' "/tmp/fio.$name"; then
		info "fio $name: $(fio_figures "$name")"
		ok "fio verify=crc32c randwrite+verify bs=$1 iodepth=$2 size=$3"
	else
		show "/tmp/fio.$name" 30
		notok "fio verify=crc32c randwrite+verify bs=$1 iodepth=$2 size=$3"
	fi
}

wait_dev() {	# wait_dev [DISK [gone]]: up to 30 s for DISK to appear (or go)
	i=0 d=${1:-$DEV}
	while { [ -b "$d" ] && [ "${2:-}" = gone ]; } ||
	      { [ ! -b "$d" ] && [ "${2:-}" != gone ]; }; do
		[ $i -ge 60 ] && return 1
		sleep 0.5
		i=$((i + 1))
	done
}

# --- the device is there ---------------------------------------------------------
if wait_dev; then
	ok "$DEV appears"
else
	ls /sys/class/nvme 2>&1 | show /dev/stdin
	dmesg | grep -i nvme | tail -n 20 > /tmp/dmesg.nvme
	show /tmp/dmesg.nvme
	notok "$DEV appears"
	exit 1
fi
info "$(cat /sys/class/nvme/nvme0/model 2>/dev/null) queues: $(ls "/sys/block/${DEV#/dev/}/mq" | wc -l)"

# raw_check MB [DISK TAG]: MB MiB of random data at 256 MiB of DISK
# (default $DEV), written and read back; E2E-TAG (default E2E-RAW) tells the
# test VM what to find on the backend after power-off.
raw_check() {
	d=${2:-$DEV} tag=${3:-RAW}
	dd if=/dev/urandom of=/tmp/pat bs=1M count="$1" 2>/dev/null
	if dd if=/tmp/pat of="$d" bs=1M seek=256 oflag=direct conv=notrunc 2>/dev/null &&
	   dd if="$d" of=/tmp/pat.back bs=1M skip=256 count="$1" iflag=direct 2>/dev/null &&
	   cmp -s /tmp/pat /tmp/pat.back; then
		ok "raw $1 MiB at 256 MiB of $d written and read back"
		echo "E2E-$tag 256 $1 $(sha256sum < /tmp/pat | cut -d' ' -f1)"
	else
		notok "raw $1 MiB at 256 MiB of $d written and read back"
	fi
}

# wait_live N: wait up to N half-seconds for the controller to be live
# again after a reset; leaves its state in $state.
wait_live() {
	i=0
	state=
	while [ $i -lt "$1" ]; do
		state=$(cat /sys/class/nvme/nvme0/state)
		[ "$state" = live ] && break
		sleep 0.5
		i=$((i + 1))
	done
}

# Under nested TCG every nvme-cli call takes ~30 s: the short pass keeps
# one admin command (smart-log), one fio verify job and the raw data.
full() { [ "$MODE" != tcg ]; }

if full && [ "$MODE" != bench ] && [ "$MODE" != migrate ]; then
nvme list > /tmp/list 2>&1
if grep -q "$DEV" /tmp/list && grep -q "QEMU vhost-nvme Ctrl" /tmp/list &&
   { [ -z "$SERIAL" ] || grep -q "$SERIAL" /tmp/list; }; then
	ok "nvme list shows the controller, model and serial"
else
	show /tmp/list
	notok "nvme list shows the controller, model and serial"
fi
fi

# kernel_log_check: the last item of every pass.
# The console is quiet (loglevel=4), so what the nvme driver warns about
# (KERN_WARNING: a command it timed out and aborted, a controller it reset
# to recover) is only in dmesg. A completion the device dropped and Linux
# recovered passes every check above; it fails this one.
kernel_log_check() {
	dmesg > /tmp/dmesg.all 2>&1
	if grep -E 'timeout, (aborting|reset controller|disable controller|completion polled)|I/O [0-9]+ .*timeout|Abort status|controller is down|will reset|resetting controller|Removing after probe failure|Device not ready|I/O error|critical medium error|WARNING:|BUG:|Oops|Call Trace|soft lockup|rcu.*stall|hung_task|blocked for more than' \
			/tmp/dmesg.all > /tmp/dmesg.bad; then
		# without the timestamps, which would make the test VM's own
		# scan take these lines for its kernel's
		sed 's/^\[ *[0-9.]*\] //' /tmp/dmesg.bad > /tmp/dmesg.show
		show /tmp/dmesg.show
		notok "kernel log: no NVMe timeout, abort, reset, I/O error, warning or stall"
	else
		ok "kernel log: no NVMe timeout, abort, reset, I/O error, warning or stall"
	fi
}

# --- live migration (e2e.mode=migrate) ------------------------------------------------
# The test VM migrates this guest between QEMUs (guest-e2e.sh's
# migrate_pass) while two loops run, until it writes E2E-MIG-STOP into the
# mailbox block at 1020 MiB of the disk:
#   - writes: fio randwrite with verify=crc32c on 8 MiB at 512 MiB, run after
#     run (4k QD8 and 128k QD4 in turn), each run verifying what it wrote;
#   - known data: 4 MiB at 256 MiB written by fio in generations, each with
#     its own pattern (a byte of the generation and each block's offset),
#     then read at random with fio verifying every read against that
#     generation's pattern for 4 s: a stale read (an earlier generation, or
#     what was there before) or another block's data fails it. Generation 0
#     is written before E2E-MIG-READY, before the first migration;
#   - the page cache: 8 MiB at 768 MiB, written with new random data each
#     round, read through the page cache (caches dropped: the device writes
#     fresh page-cache pages) and read again from the cache, each read's
#     checksum compared with what was written: a page the device wrote on
#     the source but the migration did not carry (a dirty log that misses
#     the device's writes) reads stale on the destination. New data each
#     round: the frames a round's page cache gets are often the ones the
#     previous round freed, and stale copies of the same data would match.
# The disk is e2e.dev (default /dev/nvme0n1; /dev/vda for virtio-blk).
if [ "$MODE" = migrate ]; then
	MBOX=$((1020 * 256))	# the mailbox, in 4 KiB blocks
	STOP=/tmp/mig.stop
	kpat() { printf '0x%02x%02x%%o' $(($1 % 200 + 32)) $(($1 % 200 + 32)); }
	kwrite() {	# kwrite GEN: the known region, generation GEN
		fio_run kw --rw=write --bs=4k --iodepth=8 --size=4M --offset=256M \
			--verify=pattern --verify_pattern="$(kpat "$1")" --do_verify=0
	}
	# With polled queues (nvme.poll_queues), the known data is read
	# through them: completions the guest reaps without interrupts.
	KHIPRI=
	[ "$(cat /sys/module/nvme/parameters/poll_queues 2>/dev/null || echo 0)" -gt 0 ] &&
		KHIPRI=--hipri=1
	kread() {	# kread GEN: random reads, each checked against GEN's pattern
		fio_run kr $KHIPRI --rw=randread --bs=4k --iodepth=4 --size=4M --offset=256M \
			--verify=pattern --verify_pattern="$(kpat "$1")" --verify_fatal=1 \
			--time_based --runtime=4
	}
	dd if=/dev/zero of=$DEV bs=4k seek=$MBOX count=1 oflag=direct conv=notrunc 2>/dev/null
	rm -f $STOP /tmp/mig.w /tmp/mig.k /tmp/mig.c
	pread() { dd if=$DEV bs=1M skip=768 count=8 2>/dev/null | sha256sum | cut -d' ' -f1; }
	pwrite() {	# new random data in the region; its checksum in PCSUM
		dd if=/dev/urandom of=/tmp/pc.data bs=1M count=8 2>/dev/null &&
			PCSUM=$(sha256sum < /tmp/pc.data | cut -d' ' -f1) &&
			dd if=/tmp/pc.data of=$DEV bs=1M seek=768 oflag=direct conv=notrunc 2>/dev/null
	}
	if pwrite && echo 3 > /proc/sys/vm/drop_caches && [ "$(pread)" = "$PCSUM" ]; then
		ok "page-cache region written and read back before the first migration"
	else
		notok "page-cache region written and read back before the first migration"
	fi
	if kwrite 0 && kread 0; then
		ok "known region written (generation 0) and read back before the first migration"
	else
		show /tmp/fio.kw 10
		show /tmp/fio.kr 20
		notok "known region written (generation 0) and read back before the first migration"
	fi
	(
		i=0 f=0
		while [ ! -e $STOP ]; do
			i=$((i + 1))
			if [ $((i % 2)) = 1 ]; then set -- 4k 8; else set -- 128k 4; fi
			if ! fio_run mw --rw=randwrite --bs="$1" --iodepth="$2" --size=8M \
					--offset=512M --verify=crc32c --do_verify=1 --verify_fatal=1; then
				f=$((f + 1))
				cp /tmp/fio.mw /tmp/fio.mw.bad
			fi
			echo "$i $f" > /tmp/mig.w
		done
	) &
	wpid=$!
	(
		g=0 f=0
		while [ ! -e $STOP ]; do
			g=$((g + 1))
			if ! { kwrite $g && kread $g; }; then
				f=$((f + 1))
				cp /tmp/fio.kw /tmp/fio.kw.bad
				cp /tmp/fio.kr /tmp/fio.kr.bad
			fi
			echo "$g $f" > /tmp/mig.k
		done
	) &
	kpid=$!
	(
		r=0 f=0
		while [ ! -e $STOP ]; do
			r=$((r + 1))
			if ! pwrite; then
				f=$((f + 1))
				echo "E2E-INFO page-cache round $r: writing the region failed"
			fi
			echo 3 > /proc/sys/vm/drop_caches
			for _ in 1 2 3; do
				if [ "$(pread)" != "$PCSUM" ]; then
					f=$((f + 1))
					echo "E2E-INFO page-cache read $r: checksum differs"
				fi
				sleep 0.3
			done
			echo "$r $f" > /tmp/mig.c
		done
	) &
	cpid=$!
	echo "E2E-MIG-READY"
	t0=$(cut -d. -f1 /proc/uptime) t=0 said=0
	while :; do
		sleep 2
		t=$(($(cut -d. -f1 /proc/uptime) - t0))
		if [ "$(dd if=$DEV bs=4k skip=$MBOX count=1 iflag=direct 2>/dev/null | head -c 12)" = E2E-MIG-STOP ]; then
			break
		fi
		[ $t -ge "$MIGSECS" ] && break
		# progress, for the test VM's console watchdog
		if [ $((t - said)) -ge 10 ]; then
			said=$t
			info "migrate: ${t}s, write runs (done failed) $(cat /tmp/mig.w 2>/dev/null), known-data generations $(cat /tmp/mig.k 2>/dev/null)"
		fi
	done
	if [ $t -lt "$MIGSECS" ]; then
		ok "the test VM's stop came after ${t}s of I/O"
	else
		notok "the test VM's stop came within ${MIGSECS}s"
	fi
	# Each loop's run in progress now finishes and counts: it spanned the
	# migrations (with one count, the first run did), so one is enough.
	touch $STOP
	wait $wpid
	wait $kpid
	wait $cpid
	read -r cr cf < /tmp/mig.c || cr=0
	if [ "${cr:-0}" -ge 1 ] && [ "$cf" = 0 ]; then
		ok "page-cache reads across the migrations: $cr rounds of 3, every checksum as written"
	else
		notok "page-cache reads across the migrations: $cr rounds of 3, $cf checksums differ (stale pages)"
	fi
	read -r wi wf < /tmp/mig.w || wi=0
	read -r kg kf < /tmp/mig.k || kg=0
	info "migrate: write runs $wi ($wf failed), known-data generations $kg ($kf failed); last: $(fio_figures mw) / $(fio_figures kr)"
	if [ "${wi:-0}" -ge 1 ] && [ "$wf" = 0 ]; then
		ok "fio randwrite verify=crc32c across the migrations: $wi runs, every one verified"
	else
		[ -f /tmp/fio.mw.bad ] && show /tmp/fio.mw.bad 30
		notok "fio randwrite verify=crc32c across the migrations: $wi runs, $wf failed"
	fi
	if [ "${kg:-0}" -ge 1 ] && [ "$kf" = 0 ]; then
		ok "fio randread of the known region across the migrations: $kg generations, no stale or misplaced read"
	else
		[ -f /tmp/fio.kw.bad ] && show /tmp/fio.kw.bad 10
		[ -f /tmp/fio.kr.bad ] && show /tmp/fio.kr.bad 30
		notok "fio randread of the known region across the migrations: $kg generations, $kf failed"
	fi
	# The last generation, for the test VM to find on the backend.
	if dd if=$DEV of=/tmp/k.back bs=1M skip=256 count=4 iflag=direct 2>/dev/null; then
		echo "E2E-RAW 256 4 $(sha256sum < /tmp/k.back | cut -d' ' -f1)"
	fi
	kernel_log_check
	exit $FAILS
fi

# --- instructions per I/O (e2e.mode=icount; tools/bench/guest-level-icount.sh) ---
# e2e.icount=RW:BS:QD,... e2e.ios=SMALL:LARGE e2e.reps=N: each fio run of
# SMALL and of LARGE I/Os between the insn-count plugin's markers (mark, in
# the initramfs), N times; one line per marked run, in marker order:
#   E2E-ICOUNT INDEX RW BS QD IOS STATUS
# and first, for the profile of the kernel functions (this kernel is the
# test VM's, at its offset if it has KASLR): its _text and the text symbols of
# its modules, each line of /proc/kallsyms as
#   E2E-KSYM ADDRESS TYPE NAME [MODULE]
if [ "$MODE" = icount ]; then
	grep -E ' _text$| [tT] .*\[' /proc/kallsyms | sed 's/^/E2E-KSYM /'
	i=0	# the test VM resynced the marks' numbers before this boot
	for rep in $(seq "$ICOUNT_REPS"); do
		for spec in $(echo "$ICOUNT" | tr ',' ' '); do
			rw=${spec%%:*} rest=${spec#*:}
			bs=${rest%%:*} qd=${rest#*:}
			# Uncounted: the first run faults fio in.
			fio_run icount --rw="$rw" --bs="$bs" --iodepth="$qd" \
				--number_ios="${ICOUNT_IOS%%:*}" --norandommap --randrepeat=0
			for ios in $(echo "$ICOUNT_IOS" | tr ':' ' '); do
				fio_run icount --rw="$rw" --bs="$bs" --iodepth="$qd" \
					--number_ios="$ios" --norandommap --randrepeat=0 \
					--exec_prerun="mark start" --exec_postrun="mark stop"
				st=$?
				mark end
				i=$((i + 1))
				echo "E2E-ICOUNT $i $rw $bs $qd $ios $st"
				[ $st = 0 ] || { show /tmp/fio.icount; notok "fio $rw $bs $qd $ios"; }
			done
		done
	done
	exit $FAILS
fi

if [ "$MODE" = bench ]; then
	# e2e.bench=RW:BS:QD,... (tools/bench/guest-level.sh): one fio run per
	# entry, its JSON output gzipped and in base64 between
	# E2E-JSON-BEGIN NAME gzip+base64 and E2E-JSON-END for the test VM to
	# collect (each byte on the serial console is an exit the TCG test VM
	# emulates: fio's 7 KB of JSON took 6 s to print, 1.8 KB take 1.5 s).
	# Without it (make run): a few 4k runs with their figures.
	if [ -n "$BENCH" ]; then
		for spec in $(echo "$BENCH" | tr ',' ' '); do
			rw=${spec%%:*} rest=${spec#*:}
			bs=${rest%%:*} qd=${rest#*:}
			name=$rw-qd$qd-bs$bs
			info "bench $name"
			if fio_run "$name" --rw="$rw" --bs="$bs" --iodepth="$qd" --size=1G \
					--time_based --runtime="$SECS" --ramp_time="$RAMP" \
					--norandommap --randrepeat=0 --lat_percentiles=1 \
					--output-format=json; then
				echo "E2E-JSON-BEGIN $name gzip+base64"
				gzip -9c "/tmp/fio.$name" | base64
				echo "E2E-JSON-END"
			else
				show "/tmp/fio.$name"
				notok "fio $name"
			fi
		done
		kernel_log_check
		exit $FAILS
	fi
	for spec in "randread 1" "randread 16" "randwrite 1" "randwrite 16"; do
		set -- $spec
		name=bench-$1-qd$2
		if fio_run "$name" --rw="$1" --bs=4k --iodepth="$2" --size=256M \
				--offset=512M --time_based --runtime="$SECS" --ramp_time=1; then
			echo "E2E-BENCH $1 4k iodepth=$2: $(fio_figures "$name")"
		else
			show "/tmp/fio.$name"
			notok "fio $name"
		fi
	done
	kernel_log_check
	exit $FAILS
fi

# --- Linux driver configurations -----------------------------------------------------
# The nvme driver as the kernel command line configures it (nvme.poll_queues,
# nvme.write_queues, nvme.sgl_threshold=1: SGLs for every transfer,
# nvme.io_queue_depth, pci=nomsi); e2e.queues=D/R/P is the default/read/poll
# queue split the driver must report, e2e.qdepth=N the I/O queue depth.
# The full pass checks the split and polled I/O; e2e.mode=config runs only
# these checks and a little I/O.
QUEUES= QDEPTH=
for a in $(cat /proc/cmdline); do
	case $a in
	e2e.queues=*) QUEUES=${a#e2e.queues=} ;;
	e2e.qdepth=*) QDEPTH=${a#e2e.qdepth=} ;;
	esac
done
SPLIT=$(dmesg | sed -n 's|.*nvme0: \([0-9]*/[0-9]*/[0-9]*\) default/read/poll queues.*|\1|p' | tail -n1)
NCPU=$(grep -c ^processor /proc/cpuinfo)
config_checks() {
	info "config: $NCPU vCPUs, queues $SPLIT (default/read/poll), $(cat /proc/cmdline)"
	if [ -n "$SPLIT" ] && { [ -z "$QUEUES" ] || [ "$SPLIT" = "$QUEUES" ]; }; then
		ok "driver configuration: $SPLIT default/read/poll queues on $NCPU vCPUs"
	else
		notok "driver configuration: ${QUEUES:-?} default/read/poll queues on $NCPU vCPUs: driver reports '$SPLIT'"
	fi
	if [ -n "$QDEPTH" ]; then
		tags=$(cat /sys/block/nvme0n1/mq/*/nr_tags | sort -u | tr '\n' ' ')
		if [ "$tags" = "$((QDEPTH - 1)) " ]; then
			ok "io_queue_depth=$QDEPTH: every hardware queue has $((QDEPTH - 1)) tags"
		else
			notok "io_queue_depth=$QDEPTH: every hardware queue has $((QDEPTH - 1)) tags: $tags"
		fi
	fi
}
polled_check() {	# polled I/O, if the driver has poll queues
	poll=${SPLIT##*/}
	[ "${poll:-0}" -gt 0 ] || return 0
	name=polled
	if fio_run $name --hipri=1 --rw=randwrite --bs=4k --iodepth=4 --size=2M \
			--offset=704M --verify=crc32c --do_verify=1 --verify_fatal=1; then
		info "fio $name: $(fio_figures $name)"
		ok "fio verify on polled queues (io_uring IOPOLL, CQs without interrupts)"
	else
		show /tmp/fio.$name 30
		notok "fio verify on polled queues (io_uring IOPOLL, CQs without interrupts)"
	fi
}
intx_check() {	# pci=nomsi: interrupts on a pin shared by every queue
	grep -q 'pci=nomsi' /proc/cmdline || return 0
	grep nvme /proc/interrupts > /tmp/irqs
	show /tmp/irqs
	if grep -q 'IO-APIC.*nvme0q1' /tmp/irqs && ! grep -q 'MSI' /tmp/irqs &&
	   [ "$(awk '/nvme0q1/ { print $2 }' /tmp/irqs)" -gt 0 ]; then
		ok "pin-based interrupts (no MSI-X): the I/O queue's line fired"
	else
		notok "pin-based interrupts (no MSI-X): the I/O queue's line fired"
	fi
}
if [ "$MODE" = config ]; then
	config_checks
	# One job per vCPU, each pinned, each on its own 8 MiB.
	name=percpu
	if fio_run $name --rw=randwrite --bs=4k --iodepth=8 --size=4M --offset=512M \
			--offset_increment=8M --numjobs="$NCPU" --cpus_allowed=0-$((NCPU - 1)) \
			--cpus_allowed_policy=split --verify=crc32c --do_verify=1 \
			--verify_fatal=1; then
		info "fio $name: $(fio_figures $name)"
		ok "fio verify randwrite+verify bs=4k iodepth=8, one job pinned to each of $NCPU vCPUs"
	else
		show /tmp/fio.$name 30
		notok "fio verify randwrite+verify bs=4k iodepth=8, one job pinned to each of $NCPU vCPUs"
	fi
	fio_verify 128k 4 8M 640M
	polled_check
	intx_check
	raw_check 2
	kernel_log_check
	exit $FAILS
fi

# cfg_byte OFF / cfg_word OFF: the controller's PCI configuration space
cfg_byte() { od -An -tu1 -j"$1" -N1 "$PCFG" | tr -d ' '; }
cfg_word() { od -An -tu2 -j"$1" -N2 "$PCFG" | tr -d ' '; }
uptime_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }
# drain_verdict ITEM MS BASE GOOD FIO...: the item for a reset that took MS
# ms with 2 s I/Os in flight, BASE ms with nothing in flight, under the fio
# runs FIO...: "too short to tell a blocked main loop" if the drain, the
# difference, is under 300 ms, or if no I/O of those runs took 1.9 s (they
# were not behind the slow backend: a reset under fast I/O is slow here
# too, with the CPU busy), else ok if GOOD is 0, else not ok with the fio
# logs shown.
drain_verdict() {
	dv_item=$1 dv_ms=$(($2 - $3)) dv_good=$4 dv_max=0
	shift 4
	for dv_fio; do
		dv_m=$(fio_max_ms "$dv_fio")
		[ "${dv_m:-0}" -gt $dv_max ] && dv_max=$dv_m
	done
	if [ "$dv_ms" -lt 300 ] || [ $dv_max -lt 1900 ]; then
		notok "$dv_item: the drain took $dv_ms ms, the longest I/O $dv_max ms: too short to tell a blocked main loop"
	elif [ "$dv_good" = 0 ]; then
		ok "$dv_item"
	else
		for dv_fio; do
			show "/tmp/fio.$dv_fio" 20
		done
		notok "$dv_item"
	fi
}
# flr_slow_check: a function level reset written straight into the PCI
# Express Device Control register under fio, as a guest whose driver does
# not first disable the controller would (Linux's own reset file does:
# its FLR finds nothing in flight).  With 2 s I/Os in flight the device
# stays "not ready" (configuration reads all ones, as PCIe lets a function
# be after an FLR) until the module's drain is over, then resets; the test
# VM times QEMU's monitor meanwhile (E2E-SLOW-FLR).  The guest then does
# what Linux's pci_reset_function() does after an FLR: it waits for the
# function, restores its header (BARs, command) and resets the driver's
# controller, whose requests fio then sees completed.
flr_slow_check() {
	PCFG=/sys/class/nvme/nvme0/device/config
	p=$(cfg_byte 52) n=0
	while [ -n "$p" ] && [ "$p" != 0 ] && [ $n -lt 48 ] && [ "$(cfg_byte "$p")" != 16 ]; do
		p=$(cfg_byte $((p + 1)))
		n=$((n + 1))
	done
	if [ -z "$p" ] || [ "$p" = 0 ] || [ $n = 48 ]; then
		notok "function level reset with 2 s I/O in flight: no PCI Express capability"
		return
	fi
	devctl=$((p + 8))
	dd if="$PCFG" of=/tmp/cfg.saved bs=64 count=1 2>/dev/null
	# What an FLR takes with nothing in flight
	flr_once
	flr_base=$((t2 - t0))
	# The test VM times the monitor for 6 s from each marker: the reset's
	# timing must be over.
	sleep 2
	echo "E2E-SLOW-FLR"
	sleep 1
	# A second into fio's first 2 s reads: a drain long enough that a
	# main loop waiting for it would show.
	fio_run slowflr --rw=randread --bs=4k --iodepth=16 --size=16M --offset=512M \
		--time_based --runtime=6 &
	fpid=$!
	sleep 1
	flr_once
	wait $fpid
	frc=$?
	# The drain, whether the write or the wait for the function took it
	info "FLR: the write took $((t1 - t0)) ms, not ready for $((t2 - t1)) ms (with nothing in flight: $flr_base ms); state=$state, fio status $frc: $(fio_figures slowflr)"
	good=1
	[ $i -lt 600 ] && [ "$state" = live ] && [ $frc = 0 ] && good=0
	drain_verdict "function level reset with 2 s I/O in flight: the function comes back, controller live again, fio completes" \
		$((t2 - t0)) $flr_base $good slowflr
}

# flr_once: the FLR written into Device Control (devctl), the wait while the
# function is not ready (t0: before the write, t1: after it, t2: ready
# again; i: tenths of a second waited), then the header restored and the
# controller reset.
flr_once() {
	w=$(($(cfg_word $devctl) | 0x8000))
	t0=$(uptime_ms)
	# shellcheck disable=SC2059 # octal escapes built for printf
	printf "\\$(printf %o $((w & 255)))\\$(printf %o $((w >> 8)))" |
		dd of="$PCFG" bs=2 seek=$((devctl / 2)) count=1 conv=notrunc 2>/dev/null
	t1=$(uptime_ms)
	i=0
	while [ $i -lt 600 ] && [ "$(od -An -tx4 -N4 "$PCFG" | tr -d ' ')" = ffffffff ]; do
		sleep 0.1
		i=$((i + 1))
	done
	t2=$(uptime_ms)
	dd if=/tmp/cfg.saved of="$PCFG" bs=64 count=1 conv=notrunc 2>/dev/null
	echo 1 > /sys/class/nvme/nvme0/reset_controller
	wait_live 120
}

# --- a controller reset behind a slow backend (e2e.mode=slow) ----------------------
# The test VM puts every I/O 2 s behind dm-delay and, from E2E-SLOW-RESET on
# (a second before the reset), times QEMU's monitor while the reset drains
# the I/O in flight; a drain too short to tell fails (drain_verdict).
# timed_reset: a controller reset, t0 before it, t1 when Linux's reset file
# returns (its reset work over: the queues deleted, the drain, and the
# controller enabled again), then the wait for it to be live.
timed_reset() {
	t0=$(uptime_ms)
	echo 1 > /sys/class/nvme/nvme0/reset_controller
	t1=$(uptime_ms)
	wait_live 120
}
if [ "$MODE" = slow ]; then
	# What a reset takes with nothing in flight
	timed_reset
	reset_base=$((t1 - t0))
	fio_run slow --rw=randread --bs=4k --iodepth=16 --size=16M --offset=512M \
		--time_based --runtime=12 &
	fpid=$!
	sleep 3
	# The test VM stops the VM with 16 I/Os in flight, checks that the
	# device writes nothing to the guest's memory while it is stopped,
	# and lets it run again.
	echo "E2E-SLOW-STOP"
	sleep 1
	# The marker first: while QEMU's main loop is blocked, this console
	# is too, and the test VM must be timing the monitor before that.
	echo "E2E-SLOW-RESET"
	# A second into a second fio's first 2 s reads (the first one's are
	# at a phase the stop above leaves unknown): a drain long enough that
	# a main loop waiting for it would show.
	fio_run slowreset --rw=randread --bs=4k --iodepth=16 --size=16M --offset=600M \
		--time_based --runtime=4 &
	rpid=$!
	sleep 1
	timed_reset
	wait $fpid
	frc=$?
	wait $rpid
	rrc=$?
	info "slow reset: the reset took $((t1 - t0)) ms (with nothing in flight: $reset_base ms); state=$state, fio status $frc and $rrc: $(fio_figures slow)"
	good=1
	[ "$state" = live ] && [ $frc = 0 ] && [ $rrc = 0 ] && good=0
	drain_verdict "reset_controller with 2 s I/O in flight: controller live again, fio completes" \
		$((t1 - t0)) $reset_base $good slow slowreset
	flr_slow_check
	kernel_log_check
	exit $FAILS
fi

# bme_check: the guest clears Bus Master Enable in the controller's PCI
# command register under fio: no command completes until it sets it again.
bme_check() {
	cfg=/sys/class/nvme/nvme0/device/config
	cmd=$(dd if=$cfg bs=1 skip=4 count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
	fio_run bme --rw=randread --bs=4k --iodepth=8 --size=16M --offset=512M \
		--time_based --runtime=6 &
	fpid=$!
	sleep 2
	printf "\\$(printf %o $((cmd & ~4)))" | dd of=$cfg bs=1 seek=4 conv=notrunc 2>/dev/null
	s1=$(awk '{ print $1 + $5 }' /sys/block/nvme0n1/stat)
	sleep 2
	s2=$(awk '{ print $1 + $5 }' /sys/block/nvme0n1/stat)
	printf "\\$(printf %o "$cmd")" | dd of=$cfg bs=1 seek=4 conv=notrunc 2>/dev/null
	wait $fpid
	frc=$?
	info "BME cleared (command register $cmd): completions $s1 -> $s2 in 2 s; fio status $frc: $(fio_figures bme)"
	if [ -n "$s1" ] && [ "$s1" = "$s2" ] && [ "$frc" = 0 ]; then
		ok "Bus Master Enable cleared under fio: nothing completes until it is set again"
	else
		show /tmp/fio.bme 20
		notok "Bus Master Enable cleared under fio: nothing completes until it is set again"
	fi
}

# qd1_ms: milliseconds that 40 direct 4 KiB reads take, one at a time
qd1_ms() {
	t0=$(cut -d' ' -f1 /proc/uptime)
	dd if=$DEV of=/dev/null bs=4k count=40 skip=131072 iflag=direct 2>/dev/null
	t1=$(cut -d' ' -f1 /proc/uptime)
	echo $(( ( ${t1%.*}${t1#*.} - ${t0%.*}${t0#*.} ) * 10 ))
}
# coalescing_check: Interrupt Coalescing (08h) with TIME 25.5 ms and THR
# 256 holds each completion's interrupt back for 25.5 ms (40 reads one at
# a time: a second); Coalescing Disable (Interrupt Vector Configuration,
# 09h) on the I/O queues' vectors (vector N for queue N) lifts it; both
# read back, and both go back to 0 after.
coalescing_check() {
	qids=$(sed -n 's/.*nvme0q\([1-9][0-9]*\)$/\1/p' /proc/interrupts | tr '\n' ' ')
	base=$(qd1_ms)
	nvme set-feature $CTRL -f 8 -v 0xffff > /tmp/coal 2>&1
	v8=$(getf 8)
	slow=$(qd1_ms)
	for q in $qids; do
		nvme set-feature $CTRL -f 9 -v $((q | 0x10000)) >> /tmp/coal 2>&1
	done
	v9=$(getf 9 -c "${qids%% *}")
	fast=$(qd1_ms)
	for q in $qids; do
		nvme set-feature $CTRL -f 9 -v "$q" >> /tmp/coal 2>&1
	done
	nvme set-feature $CTRL -f 8 -v 0 >> /tmp/coal 2>&1
	info "coalescing: 40 reads at QD1: $base ms; with 08h 0xffff (read back $v8) $slow ms; with 09h CD on vectors $qids (read back $v9) $fast ms"
	if [ $((v8)) = 65535 ] && [ $((v9 & 0x10000)) != 0 ] && [ "$slow" -ge 800 ] &&
	   [ $((base * 2)) -le "$slow" ] && [ $((fast * 2)) -le "$slow" ]; then
		ok "Interrupt Coalescing (08h) holds interrupts back, Coalescing Disable (09h) lifts it"
	else
		show /tmp/coal
		notok "Interrupt Coalescing (08h) holds interrupts back, Coalescing Disable (09h) lifts it"
	fi
}

# --- namespaces (e2e.mode=ns) --------------------------------------------------------
# Namespace 1 is the controller's backend=, namespace 2 a second device on
# the controller's bus (vhost-nvme-ns or, for the control, nvme-ns) on
# another backend. On E2E-NS-ADD the test VM hot-plugs namespace 3 (a file)
# through QEMU's monitor, on E2E-NS-DEL it unplugs it. Namespace 2 is then
# detached and attached again by the guest (Namespace Attachment).
if [ "$MODE" = ns ]; then
	N2=/dev/nvme0n2 N3=/dev/nvme0n3
	if wait_dev $N2 && [ "$(cat /sys/block/nvme0n2/size)" = "$NSZE" ]; then
		ok "namespace 2 appears, $NSZE LBAs"
	else
		ls /dev/nvme* | show /dev/stdin
		notok "namespace 2 appears, $NSZE LBAs"
	fi
	g1=$(nvme id-ns $DEV 2>/dev/null | awk '/^nguid/ { print $3 }')
	g2=$(nvme id-ns $N2 2>/dev/null | awk '/^nguid/ { print $3 }')
	info "NGUIDs: $g1 $g2"
	if [ -n "$g1" ] && [ -n "$g2" ] && [ "$g1" != "$g2" ] &&
	   [ "$g2" != 00000000000000000000000000000000 ]; then
		ok "the namespaces have distinct NGUIDs"
	else
		notok "the namespaces have distinct NGUIDs: '$g1' '$g2'"
	fi
	# Both at once, each with its own verify.
	if fio --direct=1 --ioengine=io_uring --thread --rw=randwrite --bs=4k \
		--iodepth=8 --size=8M --offset=512M --verify=crc32c --do_verify=1 \
		--verify_fatal=1 --name=n1 --filename=$DEV --name=n2 --filename=$N2 \
		> /tmp/fio.both 2>&1; then
		ok "fio verify on namespaces 1 and 2 at once"
	else
		show /tmp/fio.both 30
		notok "fio verify on namespaces 1 and 2 at once"
	fi
	# Those 2 x 8 MiB of writes are in the SMART log: 16 MiB, 33 thousand
	# 512-byte units rounded up, in up to 4096 commands (the block layer
	# may merge a few).
	if nvme smart-log $CTRL > /tmp/smart 2>&1 &&
	   [ "$(smart_n /tmp/smart host_write_commands)" -ge 1024 ] 2>/dev/null &&
	   [ "$(smart_n /tmp/smart 'Data Units Written')" -ge 33 ] 2>/dev/null; then
		ok "nvme smart-log: Host Write Commands and Data Units Written count both namespaces' writes"
	else
		show /tmp/smart
		notok "nvme smart-log: Host Write Commands and Data Units Written count both namespaces' writes"
	fi
	raw_check 2
	raw_check 2 $N2 RAW2
	echo "E2E-NS-ADD"
	if wait_dev $N3; then
		ok "hot-plugged namespace 3 appears"
		d1=$DEV DEV=$N3
		if fio_run n3 --rw=randwrite --bs=4k --iodepth=4 --size=4M \
				--verify=crc32c --do_verify=1 --verify_fatal=1; then
			ok "fio verify on hot-plugged namespace 3"
		else
			show /tmp/fio.n3 30
			notok "fio verify on hot-plugged namespace 3"
		fi
		DEV=$d1
	else
		notok "hot-plugged namespace 3 appears"
	fi
	echo "E2E-NS-DEL"
	if wait_dev $N3 gone; then
		ok "hot-unplugged namespace 3 disappears"
	else
		notok "hot-unplugged namespace 3 disappears"
	fi
	nvme id-ctrl $CTRL > /tmp/idctrl 2>&1
	cntlid=$(field /tmp/idctrl cntlid)
	info "cntlid $cntlid"
	if nvme detach-ns $CTRL -n 2 -c "${cntlid:-0}" > /tmp/ns.out 2>&1 &&
	   wait_dev $N2 gone; then
		ok "namespace 2 detached (Namespace Attachment): its disk goes"
	else
		show /tmp/ns.out
		notok "namespace 2 detached (Namespace Attachment): its disk goes"
	fi
	if nvme attach-ns $CTRL -n 2 -c "${cntlid:-0}" > /tmp/ns.out 2>&1 &&
	   wait_dev $N2 &&
	   dd if=$N2 of=/tmp/pat.back bs=1M skip=256 count=2 iflag=direct 2>/dev/null &&
	   cmp -s /tmp/pat /tmp/pat.back; then
		ok "namespace 2 attached again: its disk is back with its data"
	else
		show /tmp/ns.out
		notok "namespace 2 attached again: its disk is back with its data"
	fi
	bme_check
	coalescing_check
	fio_verify 4k 8 4M 600M
	kernel_log_check
	exit $FAILS
fi

# --- identify, log pages, features ---------------------------------------------------
if full; then
if nvme id-ctrl $CTRL > /tmp/idctrl 2>&1 &&
   expect id-ctrl /tmp/idctrl mn "QEMU vhost-nvme Ctrl" &&
   { [ -z "$SERIAL" ] || expect id-ctrl /tmp/idctrl sn "$SERIAL"; } &&
   expect id-ctrl /tmp/idctrl ver 0x10400 &&
   expect id-ctrl /tmp/idctrl mdts 6 &&
   expect id-ctrl /tmp/idctrl oacs 0x108 &&
   expect id-ctrl /tmp/idctrl oncs 0x5c &&
   expect id-ctrl /tmp/idctrl vwc 0x5 &&
   expect id-ctrl /tmp/idctrl sgls 0x2 &&
   expect id-ctrl /tmp/idctrl sqes 0x66 &&
   expect id-ctrl /tmp/idctrl cqes 0x44 &&
   expect id-ctrl /tmp/idctrl nn 32; then
	ok "nvme id-ctrl: model, serial, VS 1.4, MDTS 6, OACS NMS+DBCS, ONCS DSM+WZ+features+timestamp, VWC, SGL, NN 32"
else
	show /tmp/idctrl 40
	notok "nvme id-ctrl: model, serial, VS 1.4, MDTS 6, OACS NMS+DBCS, ONCS DSM+WZ+features+timestamp, VWC, SGL, NN 32"
fi

if nvme id-ns $DEV > /tmp/idns 2>&1 &&
   { [ -z "$NSZE" ] || { expect id-ns /tmp/idns nsze "$(printf 0x%x "$NSZE")" &&
			  expect id-ns /tmp/idns ncap "$(printf 0x%x "$NSZE")"; }; } &&
   grep -qE 'lbaf +0 : ms:0 +lbads:(9|12) .*in use' /tmp/idns; then
	ok "nvme id-ns: NSZE/NCAP match the backend, LBA format 0 in use"
else
	show /tmp/idns 30
	notok "nvme id-ns: NSZE/NCAP match the backend, LBA format 0 in use"
fi
if nvme ns-descs $DEV > /tmp/descs 2>&1 && grep -qi nguid /tmp/descs; then
	ok "nvme ns-descs lists an NGUID"
else
	show /tmp/descs
	notok "nvme ns-descs lists an NGUID"
fi
fi

if ! command -v nvme > /dev/null; then
	info "no nvme-cli in this initramfs: smart-log skipped"
elif nvme smart-log $CTRL > /tmp/smart 2>&1 &&
   expect smart-log /tmp/smart critical_warning 0 &&
   grep -qE '^temperature[[:space:]]*: *(50 ?°?C|323)' /tmp/smart; then
	ok "nvme smart-log: no critical warning, 50 C (hw/nvme's composite temperature)"
	# The partition scan at boot read the namespace: counted.
	if [ "$(smart_n /tmp/smart 'Data Units Read')" -gt 0 ] 2>/dev/null &&
	   [ "$(smart_n /tmp/smart host_read_commands)" -gt 0 ] 2>/dev/null; then
		ok "nvme smart-log: Data Units Read and Host Read Commands count the reads so far"
	else
		show /tmp/smart
		notok "nvme smart-log: Data Units Read and Host Read Commands count the reads so far"
	fi
else
	show /tmp/smart
	notok "nvme smart-log: no critical warning, 50 C (hw/nvme's composite temperature)"
fi

full || { fio_verify 4k 4 512k 512M; }
full && {
if nvme error-log $CTRL > /tmp/elog 2>&1 && nvme fw-log $CTRL > /tmp/fwlog 2>&1 &&
   grep -q 'frs1' /tmp/fwlog; then
	ok "nvme error-log and fw-log"
else
	show /tmp/elog 5
	show /tmp/fwlog 5
	notok "nvme error-log and fw-log"
fi

gf_ok=1
nq=$(getf 7); v_wc=$(getf 6); v_tt=$(getf 4); v_aec=$(getf 0xb); v_ic=$(getf 8)
v_pm=$(getf 2); v_arb=$(getf 1)
info "get-feature: queues=$nq vwc=$v_wc temp=$v_tt aec=$v_aec intc=$v_ic pm=$v_pm arb=$v_arb"
case $nq in 0x*) [ $((nq & 0xffff)) -ge 0 ] || gf_ok=0 ;; *) gf_ok=0 ;; esac
[ "$v_wc" = 0x1 ] || [ "$v_wc" = 0x00000001 ] || gf_ok=0
[ $((v_tt)) -eq 343 ] 2>/dev/null || gf_ok=0
[ -n "$v_aec" ] && [ -n "$v_ic" ] && [ -n "$v_pm" ] && [ -n "$v_arb" ] || gf_ok=0
# Set, read back, restore.
nvme set-feature $CTRL -f 4 -v 0x15e > /dev/null 2>&1 || gf_ok=0
[ $(($(getf 4))) -eq 350 ] 2>/dev/null || gf_ok=0
nvme set-feature $CTRL -f 4 -v 0x157 > /dev/null 2>&1 || gf_ok=0
# A feature this controller does not have: Invalid Field.
nvme get-feature $CTRL -f 0x0c > /tmp/gf-bad 2>&1 && gf_ok=0
if [ $gf_ok = 1 ]; then
	ok "nvme get-feature/set-feature: queues, VWC, temperature threshold, AEC, coalescing, PM, arbitration"
else
	show /tmp/gf-bad 3
	notok "nvme get-feature/set-feature: queues, VWC, temperature threshold, AEC, coalescing, PM, arbitration"
fi

# Queue management errors come back with the status the specification names.
adm() {	# adm EXPECTED_HEX_STATUS ARGS...: status of an admin command
	want=$1
	shift
	nvme admin-passthru $CTRL "$@" > /tmp/adm 2>&1
	grep -qiE "\(0x(4)?0?$want\)|status.*0x(4)?0?$want\b" /tmp/adm && return 0
	echo "E2E-INFO   admin $* -> $(tr '\n' ' ' < /tmp/adm), expected 0x$want"
	return 1
}
if adm 10c --opcode=0x04 --cdw10=1 &&		# Delete CQ 1, used by SQ 1
   adm 101 --opcode=0x00 --cdw10=63 &&		# Delete SQ 63: no such queue
   adm 100 --opcode=0x01 --cdw10=0x003f003f --cdw11=0x00320001 &&	# Create SQ 63 on CQ 50
   adm 101 --opcode=0x05 --cdw10=0x003f0000 --cdw11=0x1 &&		# Create CQ 0
   nvme admin-passthru $CTRL --opcode=0x08 --cdw10=0x00010001 > /tmp/abort 2>&1 &&
   grep -qiE 'result: *(0x)?0*1\b' /tmp/abort; then			# Abort: not aborted
	ok "admin errors: Invalid Queue Deletion, Invalid Queue Identifier, Completion Queue Invalid; Abort answers 'not aborted'"
else
	show /tmp/abort 3
	notok "admin errors: Invalid Queue Deletion, Invalid Queue Identifier, Completion Queue Invalid; Abort answers 'not aborted'"
fi

# --- data path ---------------------------------------------------------------------
fio_verify 4k 1 2M 512M
fio_verify 4k 32 4M 576M
fio_verify 128k 1 8M 640M
fio_verify 128k 32 16M 704M
[ -n "$QUEUES" ] && config_checks
polled_check

# Write Zeroes and Deallocate (ONCS), checked by reading back.
wz_ok=1
dd if=/dev/urandom of=/tmp/wz bs=4k count=4 2>/dev/null
dd if=/tmp/wz of=$DEV bs=4k seek=$((300 * 256)) oflag=direct conv=notrunc 2>/dev/null || wz_ok=0
lbs=$(cat /sys/block/nvme0n1/queue/logical_block_size)
slba=$((300 * 1048576 / lbs))
nlb=$((16384 / lbs))
nvme write-zeroes $DEV -s $slba -c $((nlb - 1)) > /tmp/wz.out 2>&1 || wz_ok=0
dd if=$DEV of=/tmp/wz.back bs=4k skip=$((300 * 256)) count=4 iflag=direct 2>/dev/null || wz_ok=0
dd if=/dev/zero of=/tmp/zero bs=4k count=4 2>/dev/null
cmp -s /tmp/wz.back /tmp/zero || wz_ok=0
nvme dsm $DEV -d -s $slba -b $nlb > /tmp/dsm.out 2>&1 || wz_ok=0
if [ $wz_ok = 1 ]; then
	ok "nvme write-zeroes reads back as zeroes; nvme dsm deallocate succeeds"
else
	show /tmp/wz.out 5
	show /tmp/dsm.out 5
	notok "nvme write-zeroes reads back as zeroes; nvme dsm deallocate succeeds"
fi
}

# --- controller reset during I/O -------------------------------------------------------
if full; then
	fio_run reset --rw=randwrite --bs=4k --iodepth=16 --size=16M --offset=768M \
		--verify=crc32c --do_verify=1 --verify_fatal=1 &
	fpid=$!
	sleep 2
	was_running=0
	kill -0 $fpid 2>/dev/null && was_running=1
	echo 1 > /sys/class/nvme/nvme0/reset_controller
	wait_live 60
	wait $fpid
	frc=$?
	info "reset: fio running at reset=$was_running, state=$state, fio status $frc: $(fio_figures reset)"
	if [ $was_running = 1 ] && [ "$state" = live ] && [ $frc = 0 ]; then
		ok "reset_controller during fio I/O: controller live again, fio verify passes"
	else
		show /tmp/fio.reset 30
		dmesg | grep -i nvme | tail -n 15 > /tmp/dmesg.nvme
		show /tmp/dmesg.nvme
		notok "reset_controller during fio I/O: controller live again, fio verify passes"
	fi
fi

# --- PCI function reset (FLR) -----------------------------------------------------------
if full; then
	pdev=/sys/class/nvme/nvme0/device
	info "PCI reset methods: $(cat $pdev/reset_method 2>/dev/null)"
	if echo 1 > $pdev/reset 2>/tmp/flr.err; then
		i=0
		while [ $i -lt 60 ] && [ "$(cat /sys/class/nvme/nvme0/state)" != live ]; do
			sleep 0.5
			i=$((i + 1))
		done
		if [ "$(cat /sys/class/nvme/nvme0/state)" = live ] &&
		   fio_run flr --rw=randwrite --bs=4k --iodepth=8 --size=1M --offset=800M \
			--verify=crc32c --do_verify=1 --verify_fatal=1; then
			ok "PCI function reset: the controller comes back and fio verify passes"
		else
			show /tmp/fio.flr
			notok "PCI function reset: the controller comes back and fio verify passes"
		fi
	else
		show /tmp/flr.err
		notok "PCI function reset: the controller comes back and fio verify passes"
	fi
fi

# --- a file system ---------------------------------------------------------------------
if full; then
fs_size=128M
fs_ok=1
if mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 $DEV $fs_size > /tmp/mkfs 2>&1 &&
   mount -t ext4 $DEV /mnt; then
	mkdir -p /mnt/dir/sub
	i=1
	nfiles=8
	while [ $i -le $nfiles ]; do
		dd if=/dev/urandom of=/mnt/f$i bs=64k count=$((i * 3)) 2>/dev/null || fs_ok=0
		i=$((i + 1))
	done
	dd if=/dev/urandom of=/mnt/dir/sub/small bs=1k count=3 2>/dev/null || fs_ok=0
	(cd /mnt && find . -type f | sort | xargs sha256sum) > /tmp/sums
	sync
	umount /mnt || fs_ok=0
	echo 3 > /proc/sys/vm/drop_caches
	if mount -t ext4 $DEV /mnt; then
		(cd /mnt && sha256sum -c /tmp/sums) > /tmp/sumcheck 2>&1 || fs_ok=0
		umount /mnt || fs_ok=0
	else
		fs_ok=0
	fi
else
	show /tmp/mkfs
	fs_ok=0
fi
if [ $fs_ok = 1 ]; then
	ok "mkfs.ext4, write files, sync, remount: checksums match"
	sed 's/^/E2E-FILE /' /tmp/sums
else
	show /tmp/sumcheck
	notok "mkfs.ext4, write files, sync, remount: checksums match"
fi
fi

# --- raw data the test VM compares with the backend after power-off ---------------------
raw_mb=8
full || raw_mb=1
raw_check $raw_mb
# Interrupts the guest took on its I/O queues' vectors, for the test VM to
# hold against what QEMU's main-loop handler raised.
echo "E2E-IRQS io=$(awk '/nvme[0-9]+q[1-9]/ {
	for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++)
		s += $i
} END { print s + 0 }' /proc/interrupts)"
kernel_log_check
exit $FAILS
