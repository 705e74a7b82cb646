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
# A patch with "Lane: e2e PLAN" runs the copy's guest-e2e.sh PLAN instead
# (nested guests, with the copy's module and its own QEMU build), several
# controls to a test VM (guest-e2e-batch.sh), and its "Expect-fail-item:
# DESCRIPTION" lines name e2e items that must be "not ok" (a prefix of the
# description; "A || B": either).  The nested guests' initramfs is the
# repository's: a patch must not change it (tools/testing/e2e/l2-*).
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
# are being built.  The hostile lanes run first (quick to build), then the
# e2e lane (a QEMU build each), the selftest lane last, so that their builds
# are done when their boots begin.  Selftest programs the patch does not touch are the
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

# e2e_verdict NAME PATCH DST: the e2e lane's verdict on DST/vm, printed;
# 1 if it stayed green or did not run.  FROZEN: why the test VM of the
# batch died, if it died in this control.
e2e_verdict() {
	local name=$1 patch=$2 dst=$3 tap=$3/vm/e2e.tap missed=() d alt found nfail
	while IFS= read -r d; do
		# A SKIP (infrastructure) is not red. "A || B": one of them
		# red is enough (checks that catch the same loss, by chance in
		# one or the other).
		found=0
		while IFS= read -r alt; do
			grep -qF -- "- $alt" <(grep '^not ok' "$tap" 2>/dev/null | grep -v '# SKIP') &&
				{ found=1; break; }
		done < <(printf '%s\n' "$d" | sed 's/ || /\n/g')
		[ "$found" = 1 ] || missed+=("$d")
	done < <(sed -n 's/^Expect-fail-item: *//p' "$patch")
	nfail=$(grep -c '^not ok' "$tap" 2>/dev/null)
	if [ ${#missed[@]} -eq 0 ]; then
		echo "negative $name: red as it must be ($nfail e2e items failed, including the expected)"
		return 0
	fi
	if [ -f "$dst/vm/running" ]; then
		# The test VM died or froze before the items it must turn red
		# ran: red is not known, nor is green.
		echo "negative $name: SKIP infrastructure: the test VM ${FROZEN:-died} before ${missed[*]} ran"
		return 0
	fi
	if grep -q '^not ok.*# SKIP infrastructure' "$tap" 2>/dev/null; then
		# The nested KVM boot it needed did not run (KVM in TCG): no verdict.
		echo "negative $name: SKIP infrastructure: $(grep -m1 '^not ok.*# SKIP infrastructure' "$tap" | sed 's/.*# SKIP infrastructure: *//')"
		return 0
	fi
	if [ -f "$dst/vm/timedout" ]; then
		echo "negative $name: timed out (25 minutes) before ${missed[*]} ran"
		return 1
	fi
	echo "negative $name: GREEN where it must fail: ${missed[*]} ($nfail e2e items failed)"
	return 1
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
	e2e)
		if grep -qE '^\+\+\+ b/tools/testing/e2e/(l2-|mk-initramfs|build-fio)' "$patch"; then
			echo "the patch changes the nested guests' initramfs, which the e2e lane shares" > "$dst/prep.status"
			return
		fi
		echo "${lane#e2e }" | xargs > "$dst/plan"
		# A copy of the QEMU build per tree (build-qemu.sh): the
		# shared build tree is rebuilt for the next control.
		if ! { make -C "$KDIR" M="$dst/tree" modules &&
		       (cd "$dst/tree" && tools/qemu/build-qemu.sh | tail -n1 > "$dst/qemu") &&
		       [ -x "$(cat "$dst/qemu")" ]; } > "$dst/build.log" 2>&1; then
			echo "build failed (see $dst/build.log)" > "$dst/prep.status"
			return
		fi
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

# The VMs run the hostile lanes first, then the e2e lane's controls and
# then the selftest lane's, several to a boot; the host side is prepared
# in the same order, so each lane's builds are done by the time its VM
# boots.
e2e=() hostile=() selftest=()
for name in "$@"; do
	lane=$(lane_of "$name")
	case ${lane%% *} in
	e2e) e2e+=("$name") ;;
	hostile) hostile+=("$name") ;;
	*) selftest+=("$name") ;;
	esac
done
set -- "${hostile[@]}" "${e2e[@]}" "${selftest[@]}"

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
for name in "${hostile[@]}"; do
	prepared "$name" || { rc=1; continue; }
	lane=$(lane_of "$name")
	neg_hostile "$name" "$REPO/$NEG/$name.patch" "$OUT/$name" "${lane#hostile}" || rc=1
done

# e2e_inputs: what the e2e lane's test VMs share, as e2e.sh builds it
# (cached): a static fio, the nested guests' kernel and initramfs.
e2e_inputs() {
	local fio
	fio=$(tools/testing/e2e/build-fio.sh | tail -n1) &&
	E2E_INITRD=$(tools/testing/e2e/mk-initramfs.sh "$KVER" "$fio" | tail -n1) &&
	E2E_INITRD_MIN=$(tools/testing/e2e/mk-initramfs.sh "$KVER" "$fio" min | tail -n1) ||
		return 1
	E2E_KERNEL=$VN_CACHE/vm/vmlinux-$KVER
	[ -s "$E2E_KERNEL" ] || E2E_KERNEL=$VMLINUZ
}

# batch LANE NAME...: the prepared controls of the e2e or the selftest
# lane, several to a boot (guest-e2e-batch.sh, guest-batch.sh); one that
# leaves the kernel unfit ends the boot and the rest go on in the next.
# The VM's output directory is $OUT itself, so that each control's DIR/vm
# is writable from the guest.
batch() {
	local lane=$1 todo=() rest=() dirs=() name dst boot=0 blog
	shift
	for name in "$@"; do
		prepared "$name" && todo+=("$name") || rc=1
	done
	while [ ${#todo[@]} -gt 0 ]; do
		boot=$((boot + 1))
		blog=$OUT/$lane-batch$boot
		dirs=()
		for name in "${todo[@]}"; do
			dirs+=("$OUT/$name")
		done
		if [ "$lane" = e2e ]; then
			# As e2e.sh: one vCPU (nested KVM is reliable with
			# one), killed when its console is silent (frozen).
			VN_REPO="$REPO" tools/testing/vm/vm-run.sh --smp 1 --idle 240 \
				--out "$OUT" --timeout $((600 + 1600 * ${#todo[@]})) \
				"$NEG/guest-e2e-batch.sh" "$E2E_KERNEL" "$E2E_INITRD" \
				"$E2E_INITRD_MIN" "${dirs[@]}"
		else
			VN_REPO="$REPO" tools/testing/vm/vm-run.sh --out "$OUT" \
				--timeout $((300 + 120 * ${#todo[@]})) \
				"$NEG/guest-batch.sh" "${dirs[@]}"
		fi > "$blog.log" 2>&1
		mv -f "$OUT/console.log" "$blog.console.log" 2>/dev/null
		FROZEN=
		if [ -f "$OUT/.vmrun/idle" ]; then
			FROZEN="froze (console silent; $(sed -n 1p "$OUT/.vmrun/frozen-class" 2>/dev/null || echo "not classified"))"
		fi
		rest=()
		for name in "${todo[@]}"; do
			dst=$OUT/$name
			if [ "$lane" = e2e ] && { [ -f "$dst/vm/status" ] || [ -f "$dst/vm/running" ]; }; then
				e2e_verdict "$name" "$REPO/$NEG/$name.patch" "$dst" || rc=1
			elif [ -f "$dst/vm/status" ]; then
				selftest_verdict "$name" "$REPO/$NEG/$name.patch" "$dst" || rc=1
			elif [ -f "$dst/vm/running" ]; then
				echo "negative $name: the VM did not finish (see $blog.log, $blog.console.log)"
				rc=1
			else
				rest+=("$name")
			fi
		done
		if [ ${#rest[@]} -eq ${#todo[@]} ]; then
			for name in "${rest[@]}"; do
				echo "negative $name: the VM did not start it (see $blog.log)"
			done
			rc=1
			return
		fi
		todo=("${rest[@]}")
	done
}

if [ ${#e2e[@]} -gt 0 ]; then
	if e2e_inputs > "$OUT/e2e-inputs.log" 2>&1; then
		batch e2e "${e2e[@]}"
	else
		for name in "${e2e[@]}"; do
			echo "negative $name: the nested guests' fio or initramfs did not build (see $OUT/e2e-inputs.log)"
		done
		rc=1
	fi
fi
batch selftest "${selftest[@]}"
exit $rc
