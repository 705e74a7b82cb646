#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of `make check-intree` (run by vm-run.sh): the selftests
# through the kernel's kselftest framework in the overlay tree TREE that
# check-intree.sh prepared: run_tests without the module (run.sh must skip),
# then with TREE's drivers/vhost/nvme/vhost_nvme.ko inserted.  TAP in
# $VM_OUT/intree.tap.
#
#   guest-intree.sh TREE
set -uo pipefail
: "${VM_OUT:?run this through tools/testing/vm/vm-run.sh}"
# shellcheck source=guest-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/guest-lib.sh"
TREE=${1:?usage: guest-intree.sh TREE}

TAP=$VM_OUT/intree.tap
: > "$TAP"

# run_tests LOG PATTERN: the framework's run, its summary line matching
run_tests() {
	make -C "$TREE/tools/testing/selftests" TARGETS=vhost_nvme run_tests \
		> "$VM_OUT/$1" 2>&1
	grep -E '^(not )?ok [0-9]+ selftests: vhost_nvme' "$VM_OUT/$1"
	grep -Eq "$2" "$VM_OUT/$1"
}

step "run_tests without the module: run.sh skipped" \
	run_tests kselftest-nomodule.log '^ok 1 selftests: vhost_nvme: run\.sh # SKIP'
if step "insmod the in-tree module" insmod "$TREE/drivers/vhost/nvme/vhost_nvme.ko"; then
	step "run_tests with the in-tree module: run.sh passed" \
		run_tests kselftest.log '^ok 1 selftests: vhost_nvme: run\.sh$'
	grep -cE '^# +ok [0-9]+ ' "$VM_OUT/kselftest.log" | sed 's/^/# selftest results: /'
	step "rmmod vhost_nvme" vn_unload_module
fi
vn_tap_finish
