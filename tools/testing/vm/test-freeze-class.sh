#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# TAP test of freeze-class.py: the dumps of a test VM that froze in CI
# (freeze-samples/tcg-svm-halt.txt, the emulator's freeze) are classified
# as the emulator's, and each change that makes the same halt one a guest
# can cause (or one seen only once) is not.  The second kind must stay a
# device failure in e2e.sh: these are the classifier's negative controls.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")" || exit 1
S=freeze-samples/tcg-svm-halt.txt
n=0 bad=0
case_() {	# case_ WANT NAME SED-SCRIPT
	local got
	n=$((n + 1))
	got=$(sed -E "$3" "$S" | python3 freeze-class.py /dev/stdin)
	if [ "${got%%:*}" = "$1" ]; then
		echo "ok $n - $2: $1"
	else
		echo "not ok $n - $2: want $1, got: $got"
		bad=$((bad + 1))
	fi
}
echo "1..8"
case_ emulator "the dumps of a frozen CI test VM" ''
case_ unknown "interrupts disabled (IF=0)" 's/RFL=00000246/RFL=00000046/'
case_ unknown "nothing pending" 's/^IRR\t .*/IRR\t (none)/'
case_ unknown "the pending vector masked by the priority" 's/PPR 0x10/PPR 0xf0/'
case_ unknown "the vCPU runs" 's/HLT=1/HLT=0/'
case_ unknown "an interrupt shadow" 's/II=0/II=1/'
case_ unknown "a single dump" '/attempt 2/,$d'
case_ unknown "the vector went away after the wake-up" '/attempt 2/,$s/^IRR\t .*/IRR\t (none)/'
[ "$bad" = 0 ]
