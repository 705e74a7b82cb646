#!/bin/bash
# shellcheck disable=SC2317 # functions run through step()
# SPDX-License-Identifier: GPL-2.0
# Guest side of `make check` (run by vm-run.sh): load the built vhost_nvme.ko,
# run the selftests (through tools/testing/selftests/vhost_nvme/run.sh, which
# creates the null_blk and loop backends, or, without it, the binary with
# backends set up here) and unload the module.
# Writes its own steps as TAP to $VM_OUT/guest-check.tap and the selftest's
# TAP output to $VM_OUT/selftests.tap. Exits non-zero if anything failed.
#
# The block_bio_queue tracepoint the selftests read is enabled at boot:
# turning a tracepoint on or off patches kernel text with cross-CPU IPIs,
# and under TCG an IPI is sometimes never answered (the sender spins in
# smp_call_function_many_cond(), a soft lockup, the VM hangs; reproduced
# with no module loaded, by toggling it under dd).
# vm-run-append: trace_event=block:block_bio_queue
set -uo pipefail
: "${VM_OUT:?run this through tools/testing/vm/vm-run.sh}"
# shellcheck source=guest-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/guest-lib.sh"

TAP=$VM_OUT/guest-check.tap
STAP=$VM_OUT/selftests.tap
SELFTEST_TIMEOUT=${SELFTEST_TIMEOUT:-300}
: > "$TAP"
: > "$STAP"

# tap_complete TAP SKIPLIST [PLANS]: the kselftest TAP in TAP, the output
# of one or more test programs one after the other (PLANS of them, when
# given), has a plan per program ("1..N"), the results each plan announces
# (so the sum of the plans equals the number of results), and skips only of
# the tests SKIPLIST names.
tap_complete() {
	awk -v skips="$2" -v want_plans="${3:-0}" '
	BEGIN {
		while ((getline l < skips) > 0) {
			if (l ~ /^#/ || l == "")
				continue
			sub(/[ \t].*/, "", l)
			want[l] = 1
		}
	}
	function plan_done() {
		if (plans && got != plan) {
			printf "%d results for plan %d (1..%d)\n", got, plans, plan
			bad = 1
		}
	}
	/^#  RUN +/ { name = $3 }
	/^1\.\.[0-9]+$/ {
		plan_done()
		plans++
		plan = substr($0, 4) + 0
		total += plan
		got = 0
	}
	/^(not )?ok [0-9]+/ {
		n++
		got++
		if ($0 ~ /# SKIP/ && !(name in want)) {
			print "unexpected skip: " name
			bad = 1
		}
	}
	END {
		plan_done()
		if (!plans) {
			print "no TAP plan"
			bad = 1
		} else if (n != total) {
			printf "%d results for %d plans of %d tests in all\n", n, plans, total
			bad = 1
		}
		if (want_plans && plans != want_plans) {
			printf "%d TAP plans, not %d: a test program did not run\n", plans, want_plans
			bad = 1
		}
		exit bad
	}' "$1"
}

# Backends for the selftests' io variants (see the header of
# vhost_nvme_utils.h): a memory-backed null_blk with discard and a write-back
# cache, and a loop device on a 256 MiB tmpfs file.
setup_nullb() {
	# cache_size gives null_blk a volatile (write-back) cache
	modprobe null_blk nr_devices=1 memory_backed=1 gb=1 discard=1 cache_size=64 &&
	[ -b /dev/nullb0 ] &&
	grep -q "write back" /sys/block/nullb0/queue/write_cache
}
setup_loop() {
	local img=/tmp/vhost-nvme-loop.img
	truncate -s 256M "$img" &&
	VHOST_NVME_LOOP=$(losetup -f --show "$img") &&
	[ -b "$VHOST_NVME_LOOP" ]
}
# The selftests' own run.sh sets the backends up (and tears them down) when
# it exists; otherwise do it here and run the programs directly.
ST_RUN=tools/testing/selftests/vhost_nvme/run.sh
# No udev here: /dev/loop-control only appears once loop is loaded.
step "load loop" modprobe loop
if [ ! -f "$ST_RUN" ]; then
	step "set up null_blk backend" setup_nullb && export VHOST_NVME_NULLB=/dev/nullb0
	step "set up loop backend" setup_loop && export VHOST_NVME_LOOP
fi

ko=$(vn_find_ko)
loaded=1
if [ -z "$ko" ]; then
	result 1 "insmod vhost_nvme.ko: module not built"
else
	echo "# insmod $ko"
	vn_load_module
	loaded=$?
	result $loaded "insmod vhost_nvme.ko"
fi

missing=$(vn_selftests_missing | tr '\n' ' ')
if [ -n "$missing" ]; then
	result 1 "run selftests: ${missing% } not built"
else
	if [ -f "$ST_RUN" ]; then
		cmd=(sh "$ST_RUN")
	else
		# Every program, a failure not stopping the later ones.
		# shellcheck disable=SC2016 # expanded by that sh
		cmd=(sh -c 'rc=0; for p; do "$p" || rc=1; done; exit $rc' sh)
		for p in "${VN_SELFTESTS[@]}"; do
			cmd+=("./$VN_SELFTEST_DIR/$p")
		done
	fi
	echo "# running ${cmd[*]} (VHOST_NVME_NULLB=${VHOST_NVME_NULLB:-} VHOST_NVME_LOOP=${VHOST_NVME_LOOP:-})"
	# Shortly before timeout(1) kills the run, show where it is stuck:
	# a test in an unkillable wait outlives the kill. (The sleep must not
	# hold our stdout: the caller's tee would wait for it.)
	( sleep $((SELFTEST_TIMEOUT - 5)) > /dev/null 2>&1 && vn_dump_stuck "$VN_SELFTEST_PATTERN" ) &
	wd=$!
	timeout -k 10 "$SELFTEST_TIMEOUT" "${cmd[@]}" 2>&1 | tee "$STAP"
	rc=${PIPESTATUS[0]}
	kill "$wd" 2>/dev/null
	wait "$wd" 2>/dev/null
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		result 1 "selftests finished within ${SELFTEST_TIMEOUT}s"
	elif ! grep -Eq '^[[:space:]]*(not )?ok [0-9]+' "$STAP"; then
		result 1 "selftests produced TAP results (exit status $rc)"
	elif [ "$rc" -ne 0 ] && ! grep -Eq '^[[:space:]]*not ok [0-9]+' "$STAP"; then
		result 1 "selftests exit status $rc without a failing test"
	elif [ "$rc" -ne 0 ]; then
		failed=1
	fi
	# A partial run is a failure; so is a skip nobody expected.
	step "selftests: every planned test reported, no unexpected skip" \
		tap_complete "$STAP" "$VN_SELFTEST_DIR/expected-skips" \
		"${#VN_SELFTESTS[@]}"
fi

# The fio ioengine's verify jobs (tools/fio-vhost-nvme/guest-test.sh), one
# item each, while the module is loaded.
FIO_TEST=tools/fio-vhost-nvme/guest-test.sh
if [ "$loaded" -eq 0 ] && [ -f "$FIO_TEST" ]; then
	bash "$FIO_TEST" "$VM_OUT/fio-engine.res"
	frc=$?
	fbad=0 fn=0
	while read -r rc desc; do
		result "$rc" "$desc"
		fn=$((fn + 1))
		[ "$rc" = 0 ] || fbad=1
	done < "$VM_OUT/fio-engine.res"
	# Its exit status must agree with its items, and it must have some.
	if [ "$fn" = 0 ] || { [ "$frc" != 0 ] && [ "$fbad" = 0 ]; }; then
		result 1 "fio engine jobs: exit status $frc with $fn results, none failing"
	fi
fi

if [ "$loaded" -eq 0 ]; then
	step "rmmod vhost_nvme" vn_unload_module
fi
[ -z "${VHOST_NVME_LOOP:-}" ] || losetup -d "$VHOST_NVME_LOOP"
vn_tap_finish
