#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check-dkms`: the DKMS install tested in the test VM.  Installs dkms
# on this machine (the VM's root is this machine's, read-only under a tmpfs
# overlay), builds the selftests, and runs tools/testing/vm/guest-dkms.sh in
# the VM: `make dkms`'s script builds and installs the module for the VM's
# kernel, modprobe loads it from /lib/modules/KVER/updates/dkms, the
# control-plane selftests pass on it, it unloads and leaves DKMS.  Nothing
# is installed on this machine but the dkms package.  Ends with "N passed,
# N failed, N skipped"; exits 1 if anything failed.  Logs in $RESULTS
# (default results/check-dkms).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
# shellcheck source=items.sh
. tools/testing/items.sh

items_lane check-dkms --dkms
# shellcheck source=env.sh
. tools/testing/env.sh

if run_logged "$RES/selftests-build.log" \
		make -C tools/testing/selftests/vhost_nvme KSRC="$KSRC"; then
	item pass "build selftests"
else
	item fail "build selftests" "see $RES/selftests-build.log"
fi
echo "check-dkms: running tools/testing/vm/guest-dkms.sh in a VM"
tools/testing/vm/vm-run.sh --timeout 1800 --out "$RES/vm" \
	tools/testing/vm/guest-dkms.sh 2>&1 | sed 's/^/    /' || true
if [ -s "$RES/vm/dkms.tap" ]; then
	tap_items "dkms" "$RES/vm/dkms.tap"
else
	item fail "guest-dkms.sh reported nothing" "see $RES/vm/guest.log"
fi
if [ -s "$RES/vm/warnings.txt" ]; then
	item fail "no kernel warnings in the VM" "see $RES/vm/warnings.txt"
else
	item pass "no kernel warnings in the VM"
fi

echo "check-dkms: logs in $RES"
items_end
