# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# Sourceable, after items.sh: the hostile-suite lane of tools/testing/check.sh
# (CI size) and tools/testing/check-hostile.sh (the long lane).
#
#   hostile_lane RES TIMEOUT ARGS...
# builds tools/testing/hostile and tools/vhost-nvme-load, runs
# tools/testing/vm/guest-hostile.sh ARGS in the test VM (up to TIMEOUT
# seconds) and adds one item with its summary line ("hostile: N commands,
# N ioctls, N kills, N faults, N kernel warnings"). Sets HOUT, the VM's
# output directory.

hostile_lane() {
	local res=$1 timeout=$2 hrc=0
	shift 2
	echo "$ITEM_TAG: building the hostile suite"
	# guest-hostile.sh also runs tools/vhost-nvme-load against failing backends.
	if ! run_logged "$res/hostile-build.log" make -C tools/testing/hostile ||
	   ! run_logged "$res/load-build.log" make -C tools/vhost-nvme-load; then
		item fail "build the hostile suite" "see $res/hostile-build.log, $res/load-build.log"
		show "$res/hostile-build.log"
		return
	fi
	echo "$ITEM_TAG: running tools/testing/vm/guest-hostile.sh $* in a VM"
	HOUT=$res/vm-hostile
	# shellcheck disable=SC2086
	tools/testing/vm/vm-run.sh ${VM_RUN_OPTS:-} --timeout "$timeout" --out "$HOUT" \
		tools/testing/vm/guest-hostile.sh "$@" 2>&1 | sed 's/^/    /' ||
		hrc=1
	if [ "$hrc" = 0 ] && [ -s "$HOUT/hostile.summary" ]; then
		item pass "hostile suite: $(cat "$HOUT/hostile.summary")"
	else
		item fail "hostile suite" "see $HOUT/guest.log and $HOUT/console.log"
		grep -E '^hostile' "$HOUT/guest.log" 2>/dev/null | head -n 20 | sed 's/^/    /' || true
	fi
}
