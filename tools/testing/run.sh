#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make run`: deps, build the module, boot a VM and run
# tools/testing/vm/guest-run.sh in it (it loads the module and runs the
# workload). ARGS are passed to guest-run.sh; VM_RUN_OPTS (e.g.
# "--smp 1 --verbose --timeout 1200") to vm-run.sh. Results in $RESULTS
# (default results/run).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
RES=${RESULTS:-$REPO/results/run}
mkdir -p "$RES"

echo "run: deps"
tools/testing/deps.sh > "$RES/deps.log" 2>&1 || { cat "$RES/deps.log"; exit 1; }
# shellcheck source=env.sh
. tools/testing/env.sh

echo "run: building module against $KDIR"
[ -f Kbuild ] || { echo "run: no Kbuild file" >&2; exit 1; }
make -C "$KDIR" M="$REPO" modules > "$RES/build.log" 2>&1 ||
	{ tail -n 30 "$RES/build.log"; echo "run: build failed" >&2; exit 1; }

make -C tools/vhost-nvme-load > "$RES/build-load.log" 2>&1 ||
	{ cat "$RES/build-load.log"; echo "run: load tool build failed" >&2; exit 1; }

echo "run: booting VM for tools/testing/vm/guest-run.sh"
rc=0
# shellcheck disable=SC2086
tools/testing/vm/vm-run.sh ${VM_RUN_OPTS:-} --out "$RES/vm" \
	tools/testing/vm/guest-run.sh "$@" || rc=$?
if [ -f "$RES/vm/guest.log" ]; then
	echo "---- guest output ($RES/vm/guest.log) ----"
	cat "$RES/vm/guest.log"
	echo "----"
fi
# --- nested guest: fio through QEMU's -device vhost-nvme (tools/testing/e2e) ---
# Builds QEMU with the device (5-8 minutes the first time). E2E=0 skips it.
if [ "${E2E:-1}" = 1 ]; then
	echo "run: nested guest with -device vhost-nvme (tools/testing/e2e/e2e.sh bench)"
	RESULTS=$RES/e2e tools/testing/e2e/e2e.sh bench || rc=1
fi
# --- end e2e ---
echo "run: exit status $rc"
exit "$rc"
