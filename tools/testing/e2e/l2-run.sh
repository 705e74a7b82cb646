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
		-cpu "$cpu" -smp 1 -m "$mem" \
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
