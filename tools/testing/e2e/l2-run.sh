#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Sourced by the test-VM (L1) scripts that boot a nested (L2) guest with the
# QEMU built by tools/qemu/build-qemu.sh: guest-e2e.sh (the end-to-end
# tests) and tools/bench/guest-level.sh (the guest-level benchmark).
#
# Inputs (variables of the caller): QEMU, KERNEL, INITRD, INITRD_MIN (the
# small initramfs of the nested TCG pass), VM_OUT, SERIAL, NSZE, L2_DEVICE
# (array: the disk's QEMU options), L2_APPEND (extra kernel command line),
# and a function log.

# shellcheck disable=SC2034  # L2_* are outputs for the caller
FW=(-L /usr/share/qemu -L /usr/share/seabios)

# run_l2 NAME ACCEL MODE TIMEOUT IDLE: boots it; sets L2_STATUS to
#   done   the guest ran l2-tests.sh to the end and powered off
#   infra  it crashed, hung (no console output for IDLE s) or ran out of time
#   error  QEMU refused to start (a device error, not an infrastructure one)
# and L2_CON to its console log.
#
# The console comes through a pipe and the watchdog is bash builtins only:
# under TCG every fork costs milliseconds, and a polling loop of date, stat
# and grep took a fifth of the test VM's only vCPU away from the guest being
# measured.
run_l2() {
	local name=$1 accel=$2 mode=$3 tmo=$4 idle=$5
	local con=$VM_OUT/l2-$name.console err=$VM_OUT/l2-$name.stderr
	# noxsave: the CPUID that KVM in TCG gives the nested guest has XSAVE
	# sizes that disagree (fpu__init_system_xstate() WARNs "size != kernel_size"
	# at boot on any device); FXSAVE is all the tests need.
	local cpu=host mem=1G klog="quiet loglevel=4 noxsave" initrd=$INITRD qpid fd cfd
	local start=$SECONDS last=$SECONDS beat=$SECONDS killed=0 line='' part='' r reason='' rc
	if [ "$accel" = tcg ]; then
		# Nested TCG boots in minutes: its kernel messages show the
		# watchdog that it is alive; less memory to initialise.
		cpu=max mem=512M klog="loglevel=6"
		[ "$mode" = tcg ] && initrd=$INITRD_MIN
	fi
	# -device vhost-nvme under TCG (tests only): the device refuses TCG
	# unless x-allow-tcg=on.
	local dev=("${L2_DEVICE[@]}")
	[ "$accel" = tcg ] && dev=("${dev[@]/#vhost-nvme,/vhost-nvme,x-allow-tcg=on,}")
	L2_CON=$con
	log "[$name] booting the nested guest ($accel, mode $mode, timeout ${tmo}s, watchdog ${idle}s)"
	# hpet=off: QEMU emulates the HPET in its main loop, on the test VM's
	# vCPU; the guest's clocks and timers do not need it.
	exec {fd}< <(exec "$QEMU" -name "l2-$name" -machine pc,hpet=off -accel "$accel" \
		-cpu "$cpu" -smp "${L2_SMP:-1}" -m "$mem" \
		-nodefaults -no-user-config -display none -no-reboot "${FW[@]}" \
		-chardev stdio,id=con,signal=off -serial chardev:con \
		-kernel "$KERNEL" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 $klog tsc=reliable e2e.mode=$mode e2e.serial=$SERIAL e2e.nsze=$NSZE ${L2_APPEND:-}" \
		"${dev[@]}" \
		</dev/null 2> "$err")
	qpid=$!
	exec {cfd}> "$con"
	while :; do
		IFS= read -r -t 5 -u "$fd" line
		r=$?
		if [ $r -eq 0 ] || { [ $r -eq 1 ] && [ -n "$part$line" ]; }; then
			line=$part$line part=''
			printf '%s\n' "$line" >&$cfd
			last=$SECONDS
			# progress for the log
			if [[ $line == E2E-* ]]; then
				echo "e2e: [$name] ${line%$'\r'}"
				# the caller's hook, if it has one
				declare -F l2_on_line > /dev/null && l2_on_line "${line%$'\r'}"
			fi
		elif [ $r -gt 128 ]; then
			part+=$line	# timed out in the middle of a line
			[ -n "$line" ] && last=$SECONDS
		fi
		[ $r -eq 1 ] && break	# end of file: QEMU exited
		if [ -z "$reason" ]; then
			if [ $((SECONDS - start)) -ge "$tmo" ]; then
				reason="no end after ${tmo}s"
			elif [ $((SECONDS - last)) -ge "$idle" ]; then
				reason="console silent for ${idle}s"
			fi
			# Read on until QEMU is gone and the pipe is closed.
			[ -n "$reason" ] && kill -9 "$qpid" 2>/dev/null && killed=$SECONDS
		elif [ $((SECONDS - killed)) -ge 30 ]; then
			break	# QEMU does not die: wait below hangs, the test VM's watchdog fires
		fi
		# A heartbeat, so that the host's watchdog sees the test VM alive.
		if [ $((SECONDS - beat)) -ge 30 ]; then
			beat=$SECONDS
			log "[$name] ... $((SECONDS - start))s"
		fi
	done
	exec {fd}<&- {cfd}>&-
	wait "$qpid"
	rc=$?
	log "[$name] QEMU exited with status $rc after $((SECONDS - start))s${reason:+ ($reason)}"
	sed 's/^/e2e: [qemu] /' "$err" | grep -v 'Unhandled WRMSR' | head -n 40
	if grep -aq '^E2E-DONE' "$con" && [ $rc -eq 0 ]; then
		L2_STATUS="done"
	elif ! grep -aq '^E2E-START' "$con" && grep -q 'vhost-nvme' "$err" &&
	     [ -z "$reason" ] && [ $rc -ne 0 ]; then
		L2_STATUS=error
	else
		L2_STATUS=infra
		L2_REASON=${reason:-QEMU status $rc, no E2E-DONE}
		tail -n 30 "$con" | tr -d '\r' | sed "s/^/e2e: [$name console] /"
	fi
}

# run_l2_migrate NAME MODE COUNT TIMEOUT IDLE: boots the nested guest under
# KVM on L2_DEVICE (L2_MEM of memory, default 256M), each QEMU with a
# monitor (HMP over TCP) and a console file of its own; from the guest's
# E2E-MIG-READY on, migrates it COUNT times, each time to a new QEMU with
# the same command line and -incoming (A -> B, B -> A', A' -> B', ...),
# MIG_GAP seconds (default 2) after the last: waits for "Migration status:
# completed" (MIG_WAIT s at most, default 180), checks that the destination
# runs and quits the source. After the last migration (or one that did not
# complete: the guest runs on where it was) it calls the caller's
# l2_migrated (which tells the guest to stop) and waits for the guest to
# power off. Needs the caller's hmp_on and log.
# Sets L2_STATUS and L2_REASON as run_l2 does; L2_CON, the consoles of the
# QEMUs in order (l2-NAME.console; each QEMU's in l2-NAME.N.console, all
# of them in $VM_OUT once it returns, on the test VM's tmpfs before); the
# odd-numbered QEMUs get the options in the array MIG_ODD_OPTS too (host
# settings the guest does not see, e.g. the device's polling); the
# QEMUs' messages in l2-NAME.stderr; MIG_DONE, the migrations that
# completed; MIG_FAIL, why one did not; MIG_TIMES, "total/downtime" in ms
# of each.
# MIG_CPR=1: live updates instead (QEMU 10.0's cpr-transfer): guest RAM in
# a shared memfd (-machine aux-ram-share=on), each destination started
# with a main and a cpr -incoming channel (UNIX sockets), the migration
# started over QMP (HMP's migrate has no cpr channel); the destination's
# monitor answers once the source has sent its cpr state; the source is
# told to quit MIG_LINGER s (default 1) after the destination runs.
MIG_MON_PORT=4560 MIG_PORT=4660	# + the QEMU's index
# mig_qmp SOCKET JSON...: the commands on a QMP socket, after
# qmp_capabilities; prints each error's description (nothing: all ran)
mig_qmp() {
	python3 - "$@" <<'PY' 2>&1
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(60)
s.connect(sys.argv[1])
f = s.makefile("rw")
json.loads(f.readline())
for cmd in ['{"execute": "qmp_capabilities"}'] + sys.argv[2:]:
    f.write(cmd + "\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "return" in r:
            break
        if "error" in r:
            print(r["error"].get("desc", r["error"]))
            sys.exit(0)
PY
}
run_l2_migrate() {
	local name=$1 mode=$2 count=$3 tmo=$4 idle=$5
	local base=$VM_OUT/l2-$name tb=/tmp/vn-l2-$name con cfd fd cur=0 pids=() ready=0
	local reason='' rc=0 zz f
	local start=$SECONDS last=$SECONDS beat=$SECONDS killed=0 line part='' r i
	local mach=pc,hpet=off cpr=()
	if [ "${MIG_CPR:-0}" = 1 ]; then
		mach+=,memory-backend=ram0,aux-ram-share=on
		cpr=(-object "memory-backend-memfd,id=ram0,size=${L2_MEM:-256M},share=on")
	fi
	local qcmd=("$QEMU" -name "l2-$name" -machine "$mach" "${cpr[@]}" -accel kvm -cpu host
		    -smp 1 -m "${L2_MEM:-256M}" -nodefaults -no-user-config -display none
		    -no-reboot "${FW[@]}" -kernel "$KERNEL" -initrd "$INITRD"
		    -append "console=ttyS0 panic=-1 quiet loglevel=4 noxsave tsc=reliable e2e.mode=$mode e2e.serial=$SERIAL e2e.nsze=$NSZE ${L2_APPEND:-}"
		    "${L2_DEVICE[@]}")
	# The consoles, QEMU's messages and the monitor log are written to
	# the test VM's tmpfs, and copied to $VM_OUT at the end: not to files
	# on the 9p share that the script reads every second while QEMU
	# appends to them (the test VM of this pass went silent in nested
	# boots; the check plan, whose consoles are pipes, does not).
	con=$tb.console
	L2_CON=$base.console L2_REASON='' MIG_DONE=0 MIG_FAIL='' MIG_TIMES=''
	rm -f "$base".*.console "$base".*.stderr "$base.hmp.log" "$tb".*
	exec {cfd}> "$con"
	# a pipe nobody writes to: read -t on it sleeps without a fork
	exec {zz}<> <(:)
	# mig_qemu I [-incoming URI]: starts QEMU number I
	mig_qemu() {
		local i=$1
		shift
		: > "$tb.$i.console"
		local odd=()
		[ $((i % 2)) = 1 ] && odd=("${MIG_ODD_OPTS[@]}")
		[ "${MIG_CPR:-0}" = 1 ] && odd+=(-qmp "unix:$tb.$i.qmp,server=on,wait=off")
		"${qcmd[@]}" "${odd[@]}" -chardev "file,id=con,path=$tb.$i.console" -serial chardev:con \
			-monitor "tcp:127.0.0.1:$((MIG_MON_PORT + i)),server=on,wait=off" "$@" \
			</dev/null > /dev/null 2> "$tb.$i.stderr" &
		pids[i]=$!
	}
	# mig_drain: the new lines of the current QEMU's console
	mig_drain() {
		while :; do
			IFS= read -r -u "$fd" line
			r=$?
			[ $r -eq 0 ] || { part+=$line; break; }
			line=$part$line part=''
			printf '%s\n' "$line" >&$cfd
			last=$SECONDS
			if [[ $line == E2E-* ]]; then
				echo "e2e: [$name] ${line%$'\r'}"
				[[ $line == E2E-MIG-READY* ]] && ready=1
			fi
		done
	}
	# mig_vmstatus FD: the "VM status" line of the monitor on FD
	mig_vmstatus() {
		local l
		printf 'info status\n' >&"$1"
		while IFS= read -r -t 20 -u "$1" l; do
			[[ $l == *"VM status"* ]] && { echo "${l%$'\r'}"; return; }
		done
		echo "no answer"
	}
	# mig_once: migrates the guest from QEMU cur to a new one; 0 when it
	# completed and runs there
	# mig_dmon: connects dfd to the destination's monitor (60 s at most)
	mig_dmon() {
		for ((i = 0; i < 120; i++)); do
			{ exec {dfd}<>"/dev/tcp/127.0.0.1/$((MIG_MON_PORT + nxt))"; } 2>/dev/null && break
			dfd=''
			kill -0 "${pids[nxt]}" 2>/dev/null || break
			read -r -t 0.5 -u $zz
		done
	}
	mig_once() {
		local nxt=$((cur + 1)) sfd dfd='' out st=none t0 i tot down
		local cprch="{\"channel-type\": \"cpr\", \"addr\": {\"transport\": \"socket\", \"type\": \"unix\", \"path\": \"$tb.$nxt.cpr\"}}"
		local mainch="{\"channel-type\": \"main\", \"addr\": {\"transport\": \"socket\", \"type\": \"unix\", \"path\": \"$tb.$nxt.mig\"}}"
		if [ "${MIG_CPR:-0}" = 1 ]; then
			# Its monitor starts after the cpr state came: wait
			# for the cpr socket instead.
			mig_qemu $nxt -incoming "unix:$tb.$nxt.mig" -incoming "$cprch"
			for ((i = 0; i < 120; i++)); do
				[ -S "$tb.$nxt.cpr" ] && { dfd=cpr; break; }
				kill -0 "${pids[nxt]}" 2>/dev/null || break
				read -r -t 0.5 -u $zz
			done
		else
			mig_qemu $nxt -incoming "tcp:127.0.0.1:$((MIG_PORT + nxt))"
			mig_dmon
		fi
		if [ -z "$dfd" ]; then
			MIG_FAIL="migration $((MIG_DONE + 1)): the destination QEMU $nxt did not start: $(head -c 300 "$tb.$nxt.stderr")"
			kill -9 "${pids[nxt]}" 2>/dev/null
			wait "${pids[nxt]}" 2>/dev/null
			return 1
		fi
		if ! { exec {sfd}<>"/dev/tcp/127.0.0.1/$((MIG_MON_PORT + cur))"; } 2>/dev/null; then
			MIG_FAIL="migration $((MIG_DONE + 1)): no monitor on the source QEMU $cur"
			[ "$dfd" = cpr ] || exec {dfd}>&-
			kill -9 "${pids[nxt]}" 2>/dev/null
			wait "${pids[nxt]}" 2>/dev/null
			return 1
		fi
		{
			[ "$dfd" = cpr ] || echo "destination: $(mig_vmstatus $dfd)"
			hmp_on $sfd "migrate_set_parameter max-bandwidth 4G"
			hmp_on $sfd "migrate_set_parameter downtime-limit ${MIG_DOWNTIME_MS:-1000}"
		} >> "$tb.hmp.log"
		t0=$SECONDS
		if [ "$dfd" = cpr ]; then
			out=$(mig_qmp "$tb.$cur.qmp" \
				'{"execute": "migrate-set-parameters", "arguments": {"mode": "cpr-transfer"}}' \
				"{\"execute\": \"migrate\", \"arguments\": {\"channels\": [$mainch, $cprch]}}")
			echo "qmp migrate (cpr-transfer): ${out:-started}" >> "$tb.hmp.log"
			[ -n "$out" ] && st="refused: $out"
			dfd=''
			mig_dmon
			if [ -z "$dfd" ] && [[ $st != refused* ]]; then
				st="refused: the destination's monitor did not come up: $(head -c 300 "$tb.$nxt.stderr")"
			fi
		else
			out=$(hmp_on $sfd "migrate -d tcp:127.0.0.1:$((MIG_PORT + nxt))")
			echo "$out" >> "$tb.hmp.log"
			# An answer is an error (a migration blocker, a bad URI).
			out=${out#*: }
			[ -n "$out" ] && st="refused: ${out%; }"
		fi
		while [[ $st != refused* ]] && [ $((SECONDS - t0)) -lt "${MIG_WAIT:-180}" ]; do
			out=$(hmp_on $sfd "info migrate")
			st=${out#*Migration status: }
			[ "$st" = "$out" ] && st=none
			st=${st%%[ ;]*}
			case $st in completed|failed|cancelled) break ;; esac
			# no migration 10 s after the command: it did not start
			[ "$st" = none ] && [ $((SECONDS - t0)) -ge 10 ] && { st="not started"; break; }
			if [ $((SECONDS - beat)) -ge 30 ]; then
				beat=$SECONDS
				log "[$name] ... migration $((MIG_DONE + 1)): $st for $((SECONDS - t0))s"
			fi
			read -r -t 0.5 -u $zz
		done
		[[ $st == refused* ]] || echo "$out" >> "$tb.hmp.log"
		tot=$(sed -n 's/.*total time: \([0-9]*\) ms.*/\1/p' <<< "$out")
		down=$(sed -n 's/.*downtime: \([0-9]*\) ms.*/\1/p' <<< "$out")
		log "[$name] migration $((MIG_DONE + 1)): QEMU $cur -> $nxt: $st after $((SECONDS - t0))s (total ${tot:-?} ms, downtime ${down:-?} ms)"
		if [ "$st" != completed ]; then
			# The guest runs on in the source (or is lost with it).
			MIG_FAIL="migration $((MIG_DONE + 1)) (QEMU $cur -> $nxt): $st after $((SECONDS - t0))s"
			hmp_on $sfd migrate_cancel >> "$tb.hmp.log"
			exec {sfd}>&-
			[ -z "$dfd" ] || exec {dfd}>&-
			kill -9 "${pids[nxt]}" 2>/dev/null
			wait "${pids[nxt]}" 2>/dev/null
			return 1
		fi
		out=$(mig_vmstatus $dfd)
		echo "destination: $out" >> "$tb.hmp.log"
		# A live update's source lingers as a real one may: until it
		# exits, what its KVM VM kept of the queues' eventfds could take
		# the guest's interrupts.
		[ "${MIG_CPR:-0}" = 1 ] && { read -r -t "${MIG_LINGER:-1}" -u $zz || true; }
		echo quit >> "$tb.hmp.log"
		printf 'quit\n' >&$sfd
		exec {sfd}>&- {dfd}>&-
		for ((i = 0; i < 40; i++)); do
			kill -0 "${pids[cur]}" 2>/dev/null || break
			read -r -t 0.5 -u $zz
		done
		kill -9 "${pids[cur]}" 2>/dev/null
		wait "${pids[cur]}" 2>/dev/null
		mig_drain	# the source's last lines, then the destination's
		exec {fd}<&-
		exec {fd}< "$tb.$nxt.console"
		cur=$nxt
		last=$SECONDS
		if [[ $out != *"VM status: running"* ]]; then
			MIG_FAIL="migration $((MIG_DONE + 1)) completed, but the destination does not run: $out"
			return 1
		fi
		MIG_DONE=$((MIG_DONE + 1)) MIG_TIMES+="${MIG_TIMES:+ }${tot:-?}/${down:-?}"
	}
	log "[$name] booting the nested guest (kvm, mode $mode, ${L2_MEM:-256M}, $count migrations, timeout ${tmo}s, watchdog ${idle}s)"
	mig_qemu 0
	exec {fd}< "$tb.0.console"
	while :; do
		mig_drain
		if ! kill -0 "${pids[cur]}" 2>/dev/null; then
			mig_drain
			break	# the guest powered off, crashed or was killed
		fi
		if [ $ready = 1 ] && [ -z "$reason" ]; then
			if [ $MIG_DONE -lt "$count" ] && [ -z "$MIG_FAIL" ]; then
				# a moment of I/O on each QEMU
				read -r -t "${MIG_GAP:-2}" -u $zz
				mig_once || log "[$name] $MIG_FAIL"
			fi
			if [ $MIG_DONE -ge "$count" ] || [ -n "$MIG_FAIL" ]; then
				ready=2
				declare -F l2_migrated > /dev/null && l2_migrated
			fi
		fi
		if [ -z "$reason" ]; then
			if [ $((SECONDS - start)) -ge "$tmo" ]; then
				reason="no end after ${tmo}s"
			elif [ $((SECONDS - last)) -ge "$idle" ]; then
				reason="console silent for ${idle}s"
			fi
			if [ -n "$reason" ]; then
				for i in "${pids[@]}"; do kill -9 "$i" 2>/dev/null; done
				killed=$SECONDS
			fi
		elif [ $((SECONDS - killed)) -ge 30 ]; then
			break	# QEMU does not die: wait below hangs, the test VM's watchdog fires
		fi
		if [ $((SECONDS - beat)) -ge 30 ]; then
			beat=$SECONDS
			log "[$name] ... $((SECONDS - start))s, $MIG_DONE migrations"
		fi
		read -r -t 1 -u $zz
	done
	exec {fd}<&- {zz}<&-
	[ -n "$part" ] && printf '%s\n' "$part" >&$cfd
	exec {cfd}>&-
	wait "${pids[cur]}"
	rc=$?
	for ((i = 0; i <= cur; i++)); do
		sed "s/^/[QEMU $i] /" "$tb.$i.stderr"
	done > "$base.stderr"
	for f in "$tb".*; do
		cp "$f" "$base.${f#"$tb".}"
	done
	con=$base.console
	log "[$name] QEMU $cur exited with status $rc after $((SECONDS - start))s, $MIG_DONE migrations${reason:+ ($reason)}"
	grep -v 'Unhandled WRMSR' "$base.stderr" | sed 's/^/e2e: [qemu] /' | head -n 40
	if grep -aq '^E2E-DONE' "$con" && [ $rc -eq 0 ]; then
		L2_STATUS="done"
	elif ! grep -aq '^E2E-START' "$con" && [ -z "$reason" ] && [ $rc -ne 0 ] && [ "$cur" = 0 ]; then
		L2_STATUS=error
		L2_REASON="QEMU refused to start: $(head -c 300 "$tb.0.stderr")"
	else
		L2_STATUS=infra
		L2_REASON=${reason:-QEMU $cur status $rc, no E2E-DONE}
		tail -n 30 "$con" | tr -d '\r' | sed "s/^/e2e: [$name console] /"
	fi
}
