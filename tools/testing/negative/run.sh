#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Negative controls: each NAME.patch in this directory breaks the device (or
# the harness's setup) in exactly one way the suite claims to catch.  For
# each one: copy the tree (tracked files, as they are in the work tree),
# apply the patch, build the module and the selftests, run the copy's
# tools/testing/vm/guest-check.sh in the test VM (several controls to a
# boot: guest-batch.sh), and require it to go red where the patch's
# "Expect-fail:" line says (selftest names, or "guest-check" for
# guest-check.sh's own items).  A control that stays green
# means the suite would pass a device broken that way.
#
# A patch with "Lane: e2e PLAN" runs tools/testing/e2e/e2e.sh PLAN in the
# copy instead (nested guests; the QEMU build is the cached one), and its
# "Expect-fail-item: DESCRIPTION" lines name e2e items that must be
# "not ok" (a prefix of the description; "A || B": either).
#
# A patch with "Lane: hostile ARGS" runs tools/testing/vm/guest-hostile.sh
# ARGS in the copy (the hostile suite, small), which must exit non-zero, and
# its "Expect-fail-line: REGEX" lines must each match a line of its output.
#
#   tools/testing/negative/run.sh [NAME...]    default: every patch
#
# Prints "negative NAME: red ..." or "negative NAME: GREEN ..." per control;
# exits 1 if any control stayed green or could not run.  Work trees and VM
# output go to $NEG_OUT (default results/negative/NAME).
#
# The host side of each control (copy, patch, build) runs ahead of the VMs,
# niced, in the background: while the VM of one control runs, the next ones
# are being built.  The e2e lanes run first, the selftest lane last, so
# that its builds are done when its boot begins.  Selftest programs the patch does not touch are the
# repository's own builds (copied with their times, make keeps them) when
# they are there and up to date.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$REPO" || exit 1
# shellcheck source=../env.sh
. tools/testing/env.sh
NEG=tools/testing/negative
ST=tools/testing/selftests/vhost_nvme
OUT=${NEG_OUT:-$REPO/results/negative}

# A patch with a "Manual: WHY" line runs only when named: its lane is not
# in make check (WHY says why).
if [ $# -eq 0 ]; then
	set -- $(cd "$NEG" && grep -L '^Manual:' -- *.patch | sed 's/\.patch$//')
fi

# neg_e2e NAME PATCH DST PLAN: the e2e lane of one control.
neg_e2e() {
	local name=$1 patch=$2 dst=$3 plan missed=() d alt found
	plan=$(echo "$4" | xargs)
	(cd "$dst/tree" && VN_REPO="$dst/tree" RESULTS="$dst/e2e" tools/testing/e2e/e2e.sh ${plan:+"$plan"}) \
		> "$dst/e2e.log" 2>&1
	if [ ! -s "$dst/e2e/e2e.tap" ]; then
		echo "negative $name: e2e produced no TAP (see $dst/e2e.log)"
		return 1
	fi
	while IFS= read -r d; do
		# A SKIP (infrastructure) is not red. "A || B": one of them
		# red is enough (checks that catch the same loss, by chance in
		# one or the other).
		found=0
		while IFS= read -r alt; do
			grep -qF -- "- $alt" <(grep '^not ok' "$dst/e2e/e2e.tap" | grep -v '# SKIP') &&
				{ found=1; break; }
		done < <(printf '%s\n' "$d" | sed 's/ || /\n/g')
		[ "$found" = 1 ] || missed+=("$d")
	done < <(sed -n 's/^Expect-fail-item: *//p' "$patch")
	if [ ${#missed[@]} -gt 0 ] && grep -q '^not ok.*# SKIP infrastructure' "$dst/e2e/e2e.tap"; then
		# The nested KVM boot it needed did not run (KVM in TCG): no verdict.
		echo "negative $name: SKIP infrastructure: $(grep -m1 '^not ok.*# SKIP infrastructure' "$dst/e2e/e2e.tap" | sed 's/.*# SKIP infrastructure: *//')"
		return 0
	fi
	if [ ${#missed[@]} -gt 0 ] && grep -q '^not ok.*the test VM hung' "$dst/e2e/e2e.tap"; then
		# The test VM froze before the items it must turn red ran (its
		# control on -device nvme then passed): red, but not for the
		# reason it must be, and green is not known either.
		echo "negative $name: SKIP infrastructure: the test VM froze before ${missed[*]} ran"
		return 0
	fi
	if [ ${#missed[@]} -gt 0 ]; then
		echo "negative $name: GREEN where it must fail: ${missed[*]} ($(grep -c '^not ok' "$dst/e2e/e2e.tap") e2e items failed)"
		return 1
	fi
	echo "negative $name: red as it must be ($(grep -c '^not ok' "$dst/e2e/e2e.tap") e2e items failed, including the expected)"
}

# neg_hostile NAME PATCH DST ARGS: the hostile lane of one control.
neg_hostile() {
	local name=$1 patch=$2 dst=$3 args=() missed=() re
	# words, as they are: xargs would hand them to echo, which eats -n
	read -r -a args <<< "$4"
	(cd "$dst/tree" && VN_REPO="$dst/tree" tools/testing/vm/vm-run.sh \
		--timeout 1500 --out "$dst/vm" tools/testing/vm/guest-hostile.sh "${args[@]}") \
		> "$dst/vm.log" 2>&1
	if [ ! -f "$dst/vm/status" ]; then
		echo "negative $name: the VM did not finish (see $dst/vm.log)"
		return 1
	fi
	while IFS= read -r re; do
		grep -Eq -- "$re" "$dst/vm/guest.log" || missed+=("$re")
	done < <(sed -n 's/^Expect-fail-line: *//p' "$patch")
	if [ "$(cat "$dst/vm/status")" = 0 ] || [ ${#missed[@]} -gt 0 ]; then
		echo "negative $name: GREEN where it must fail: ${missed[*]:-guest-hostile.sh exit 0}"
		return 1
	fi
	echo "negative $name: red as it must be ($(grep -c '^hostile: ' "$dst/vm/guest.log") hostile failure lines, including the expected)"
}

# prep NAME: the host side of one control, into $OUT/NAME; its result in
# $OUT/NAME/prep.status: "ok", or why it could not be prepared.
prep() {
	local name=$1 patch dst lane expect p
	patch=$REPO/$NEG/$name.patch
	dst=$OUT/$name
	rm -rf "$dst"
	mkdir -p "$dst/tree"
	if [ ! -f "$patch" ]; then
		echo "no such control ($patch)" > "$dst/prep.status"
		return
	fi
	expect=$(sed -n 's/^Expect-fail: *//p' "$patch")
	lane=$(sed -n 's/^Lane: *//p' "$patch")
	git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$dst/tree"
	# The fio engine's jobs need its build; they prove nothing here.
	rm -f "$dst/tree/tools/fio-vhost-nvme/guest-test.sh"
	# The repository's selftest programs, older than anything the patch
	# changes: make rebuilds only what it touched.
	if [ -z "$lane" ] && ! make -q -C "$ST" KSRC="$KSRC" > /dev/null 2>&1; then
		:	# not built, or stale: built below
	elif [ -z "$lane" ]; then
		for p in "$ST"/vhost_nvme_*; do
			[ -x "$p" ] && [ ! -d "$p" ] && cp -p "$p" "$dst/tree/$ST/"
		done
	fi
	if ! (cd "$dst/tree" && patch -s -p1 < "$patch") > "$dst/patch.log" 2>&1; then
		echo "the patch does not apply (see $dst/patch.log)" > "$dst/prep.status"
		return
	fi
	case ${lane%% *} in
	e2e)	# e2e.sh builds in the VM lock: the QEMU cache is shared.
		;;
	hostile)
		if ! { make -C "$KDIR" M="$dst/tree" modules &&
		       make -C "$dst/tree/tools/testing/hostile" &&
		       make -C "$dst/tree/tools/vhost-nvme-load"; } > "$dst/build.log" 2>&1; then
			echo "build failed (see $dst/build.log)" > "$dst/prep.status"
			return
		fi
		;;
	*)
		# Only the tests the control must turn red run (all of them
		# when the whole guest check must fail).
		case " $expect " in
		*" guest-check "*) ;;
		*) echo "$expect" > "$dst/tree/$ST/selected" ;;
		esac
		if ! { make -C "$KDIR" M="$dst/tree" modules &&
		       make -C "$dst/tree/$ST" KSRC="$KSRC"; } > "$dst/build.log" 2>&1; then
			echo "build failed (see $dst/build.log)" > "$dst/prep.status"
			return
		fi
		;;
	esac
	echo ok > "$dst/prep.status"
}

# The selftest lane's verdict on DIR/vm of control NAME (PATCH's
# Expect-fail), printed; 1 if it stayed green.
selftest_verdict() {
	local name=$1 patch=$2 dst=$3 expect t nfail missed=()
	expect=$(sed -n 's/^Expect-fail: *//p' "$patch")
	for t in $expect; do
		if [ "$t" = guest-check ]; then
			grep -q '^not ok' "$dst/vm/guest-check.tap" 2>/dev/null || missed+=("$t")
		else
			grep -Eq "^not ok [0-9]+ $t\$" "$dst/vm/selftests.tap" 2>/dev/null ||
				missed+=("$t")
		fi
	done
	nfail=$(grep -c '^not ok' "$dst/vm/selftests.tap" 2>/dev/null)
	if [ "$(cat "$dst/vm/status")" = 0 ] || [ ${#missed[@]} -gt 0 ]; then
		echo "negative $name: GREEN where it must fail: ${missed[*]:-guest-check.sh exit 0} ($nfail selftests failed)"
		return 1
	fi
	echo "negative $name: red as it must be ($nfail selftests failed, including $expect)"
}

lane_of() { sed -n 's/^Lane: *//p' "$REPO/$NEG/$1.patch" 2>/dev/null; }

# The VMs run the e2e lanes first, then the hostile ones, then the selftest
# lane's controls, several to a boot; the host side is prepared in the same
# order, so the selftest lane's builds are done by the time its VM boots.
e2e=() hostile=() selftest=()
for name in "$@"; do
	lane=$(lane_of "$name")
	case ${lane%% *} in
	e2e) e2e+=("$name") ;;
	hostile) hostile+=("$name") ;;
	*) selftest+=("$name") ;;
	esac
done
set -- "${e2e[@]}" "${hostile[@]}" "${selftest[@]}"

# Every control's host side, in order, ahead of the VMs, niced below them.
mkdir -p "$OUT"
for name in "$@"; do
	rm -f "$OUT/$name/prep.status"
done
(
	renice -n 10 -p "$BASHPID" > /dev/null
	for name in "$@"; do
		prep "$name"
	done
) > "$OUT/prep.log" 2>&1 &
preparer=$!
trap 'kill "$preparer" 2>/dev/null' EXIT

# prepared NAME: wait for its host side; 0 if it is ready, else say why.
prepared() {
	local st dst=$OUT/$1
	while [ ! -s "$dst/prep.status" ] && kill -0 "$preparer" 2>/dev/null; do
		sleep 1
	done
	st=$(cat "$dst/prep.status" 2>/dev/null || echo "not prepared (see $OUT/prep.log)")
	[ "$st" = ok ] && return 0
	echo "negative $1: $st"
	return 1
}

rc=0
for name in "${e2e[@]}" "${hostile[@]}"; do
	patch=$REPO/$NEG/$name.patch
	dst=$OUT/$name
	prepared "$name" || { rc=1; continue; }
	lane=$(lane_of "$name")
	if [ "${lane%% *}" = e2e ]; then
		neg_e2e "$name" "$patch" "$dst" "${lane#e2e}" || rc=1
	else
		neg_hostile "$name" "$patch" "$dst" "${lane#hostile}" || rc=1
	fi
done

# The selftest lane: every prepared control in one boot
# (guest-batch.sh); one that leaves the kernel unfit ends the boot and
# the rest go on in the next.  The VM's output directory is $OUT itself,
# so that each control's DIR/vm is writable from the guest.
todo=()
for name in "${selftest[@]}"; do
	prepared "$name" && todo+=("$name") || rc=1
done
boot=0
while [ ${#todo[@]} -gt 0 ]; do
	boot=$((boot + 1))
	dirs=()
	for name in "${todo[@]}"; do
		dirs+=("$OUT/$name")
	done
	VN_REPO="$REPO" tools/testing/vm/vm-run.sh --out "$OUT" \
		--timeout $((300 + 120 * ${#todo[@]})) \
		"$NEG/guest-batch.sh" "${dirs[@]}" > "$OUT/batch$boot.log" 2>&1
	mv -f "$OUT/console.log" "$OUT/batch$boot.console.log" 2>/dev/null
	rest=()
	for name in "${todo[@]}"; do
		dst=$OUT/$name
		if [ -f "$dst/vm/status" ]; then
			selftest_verdict "$name" "$REPO/$NEG/$name.patch" "$dst" || rc=1
		elif [ -f "$dst/vm/running" ]; then
			echo "negative $name: the VM did not finish (see $OUT/batch$boot.log, $OUT/batch$boot.console.log)"
			rc=1
		else
			rest+=("$name")
		fi
	done
	if [ ${#rest[@]} -eq ${#todo[@]} ]; then
		for name in "${rest[@]}"; do
			echo "negative $name: the VM did not start it (see $OUT/batch$boot.log)"
		done
		rc=1
		break
	fi
	todo=("${rest[@]}")
done
exit $rc
