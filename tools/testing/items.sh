# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# Sourceable: the pass/fail/skip items of tools/testing/check.sh and
# tools/testing/debug-kernel/check-debug.sh. The caller sets ITEM_TAG (the
# prefix of the progress lines, e.g. "check") and SUMMARY (a file that gets
# a line per item); PASS, FAIL and SKIP count the items.

PASS=0 FAIL=0 SKIP=0

item() {	# item pass|fail|skip NAME [DETAIL]
	case $1 in
	pass) PASS=$((PASS + 1)); echo "$ITEM_TAG: PASS  $2" ;;
	fail) FAIL=$((FAIL + 1)); echo "$ITEM_TAG: FAIL  $2${3:+ ($3)}" ;;
	skip) SKIP=$((SKIP + 1)); echo "$ITEM_TAG: SKIP  $2${3:+ ($3)}" ;;
	esac
	echo "$1 $2${3:+ ($3)}" >> "$SUMMARY"
}

show() {	# show LOG [LINES]: indented tail of a log
	tail -n "${2:-15}" "$1" | sed 's/^/    /'
}

run_logged() {	# run_logged LOG CMD...: 0 if CMD succeeded
	local log=$1
	shift
	"$@" > "$log" 2>&1
}

tap_items() {	# tap_items PREFIX FILE: add the TAP results in FILE as items
	local line desc neg
	[ -f "$2" ] || return 0
	while IFS= read -r line; do
		line=${line%$'\r'}
		[[ $line =~ ^[[:space:]]*(not\ )?ok\ ([0-9]+)[[:space:]]*-?[[:space:]]*(.*)$ ]] || continue
		neg=${BASH_REMATCH[1]}
		desc="$1 ${BASH_REMATCH[2]}: ${BASH_REMATCH[3]}"
		if [[ $line =~ \#[[:space:]]*[Ss][Kk][Ii][Pp] ]]; then
			item skip "$desc"
		elif [ -z "$neg" ]; then
			item pass "$desc"
		else
			item fail "$desc"
		fi
	done < "$2"
}

# items_lane TAG [DEPS-OPTION]: the start of a lane script (make TAG): its
# results in $RESULTS (default results/TAG, emptied) with SUMMARY there,
# ITEM_TAG=TAG, and tools/testing/deps.sh [DEPS-OPTION] as the first item.
# Caller is at the repository's root.
items_lane() {
	ITEM_TAG=$1
	RES=${RESULTS:-$PWD/results/$1}
	rm -rf "$RES"
	mkdir -p "$RES"
	SUMMARY=$RES/summary.txt
	: > "$SUMMARY"
	if run_logged "$RES/deps.log" tools/testing/deps.sh ${2:+"$2"}; then
		item pass "deps"
	else
		item fail "deps" "see $RES/deps.log"
		show "$RES/deps.log"
	fi
}

# items_end: the closing counts line; status 1 if an item failed.
items_end() {
	echo "$PASS passed, $FAIL failed, $SKIP skipped"
	[ "$FAIL" -eq 0 ]
}
