#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check-hostile`: the hostile suite's long lane, apart from CI (which
# runs 1,000,000 commands and 100,000 ioctls in `make check`): by default
# 10,000,000 hostile commands, 1,000,000 random ioctls, 400 owner kills and
# 1,000 backend faults against the stock kernel in the test VM, then the
# failing-backend runs of guest-hostile.sh. It takes the test VM for a long
# time: run it when nothing else needs it. Ends with the suite's summary
# line and "N passed, N failed, N skipped"; exits 1 if anything failed.
#
# Environment: HOSTILE_ARGS (vhost-nvme-hostile's options), HOSTILE_TIMEOUT
# (seconds, default 10800), RESULTS (default results/check-hostile).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
# shellcheck source=items.sh
. tools/testing/items.sh
# shellcheck source=hostile-lane.sh
. tools/testing/hostile-lane.sh

items_lane check-hostile
# shellcheck source=env.sh
. tools/testing/env.sh

echo "check-hostile: building module against $KDIR"
if run_logged "$RES/build.log" make -C "$KDIR" M="$REPO" modules; then
	item pass "build module"
	# shellcheck disable=SC2086
	hostile_lane "$RES" "${HOSTILE_TIMEOUT:-10800}" \
		${HOSTILE_ARGS:--n 10000000 -i 1000000 -k 400 -f 1000 -t 40}
else
	item fail "build module" "see $RES/build.log"
	show "$RES/build.log"
fi

echo "check-hostile: logs in $RES"
[ ! -s "${HOUT:-/nonexistent}/hostile.summary" ] || cat "$HOUT/hostile.summary"
items_end
