#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of `make check` (run by vm-run.sh): load null_blk and loop, load
# the built vhost_nvme.ko, run the selftest binary and unload the module.
# Writes its own steps as TAP to $VM_OUT/guest-check.tap and the selftest's
# TAP output to $VM_OUT/selftests.tap. Exits non-zero if anything failed.
set -uo pipefail
: "${VM_OUT:?run this through tools/testing/vm/vm-run.sh}"
# shellcheck source=guest-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/guest-lib.sh"

TAP=$VM_OUT/guest-check.tap
STAP=$VM_OUT/selftests.tap
SELFTEST_TIMEOUT=${SELFTEST_TIMEOUT:-300}
: > "$TAP"
: > "$STAP"
n=0 failed=0

result() {	# result 0|1 DESCRIPTION
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2" | tee -a "$TAP"
	else
		echo "not ok $n - $2" | tee -a "$TAP"
		failed=1
	fi
}
step() {	# step DESCRIPTION CMD...
	local d=$1
	shift
	echo "# $d: $*"
	"$@"
	result $? "$d"
}

step "load null_blk" modprobe null_blk nr_devices=1 memory_backed=1
step "load loop" modprobe loop

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

if [ ! -x "$VN_SELFTEST" ]; then
	result 1 "run selftests: $VN_SELFTEST not built"
else
	echo "# running $VN_SELFTEST"
	timeout -k 10 "$SELFTEST_TIMEOUT" "./$VN_SELFTEST" 2>&1 | tee "$STAP"
	rc=${PIPESTATUS[0]}
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		result 1 "selftests finished within ${SELFTEST_TIMEOUT}s"
	elif ! grep -Eq '^[[:space:]]*(not )?ok [0-9]+' "$STAP"; then
		result 1 "selftests produced TAP results (exit status $rc)"
	elif [ "$rc" -ne 0 ] && ! grep -Eq '^[[:space:]]*not ok [0-9]+' "$STAP"; then
		result 1 "selftests exit status $rc without a failing test"
	elif [ "$rc" -ne 0 ]; then
		failed=1
	fi
fi

if [ "$loaded" -eq 0 ]; then
	step "rmmod vhost_nvme" vn_unload_module
fi
echo "1..$n" >> "$TAP"
exit $failed
