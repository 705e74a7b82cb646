# shellcheck shell=bash disable=SC2034
# SPDX-License-Identifier: GPL-2.0
# Helpers for guest scripts run by vm-run.sh (source it; cwd = repo root).

VN_KO_NAME=vhost_nvme
VN_SELFTEST_DIR=tools/testing/selftests/vhost_nvme
# The selftest programs, in the order their run.sh runs them.
VN_SELFTESTS=(vhost_nvme_global vhost_nvme_ctl vhost_nvme_io vhost_nvme_slow)
# An extended regular expression (pgrep -f) matching any of them.
VN_SELFTEST_PATTERN=$(IFS='|'; echo "${VN_SELFTESTS[*]}")

# Path of the built module, or nothing.
vn_find_ko() {
	if [ -f "$VN_KO_NAME.ko" ]; then
		echo "$PWD/$VN_KO_NAME.ko"
		return
	fi
	find "$PWD" -name "$VN_KO_NAME.ko" -not -path '*/.git/*' -not -path '*/results/*' \
		2>/dev/null | head -n1
}

# The selftest programs that are not built (their paths), or nothing.
vn_selftests_missing() {
	local p
	for p in "${VN_SELFTESTS[@]}"; do
		[ -x "$VN_SELFTEST_DIR/$p" ] || echo "$VN_SELFTEST_DIR/$p"
	done
}

# Load the built module (its kernel dependencies through modprobe first).
vn_load_module() {
	local ko dep
	ko=$(vn_find_ko)
	if [ -z "$ko" ]; then
		echo "vhost_nvme.ko not found (module not built?)" >&2
		return 1
	fi
	for dep in $(modinfo -F depends "$ko" | tr ',' ' '); do
		modprobe "$dep" || { echo "modprobe $dep failed" >&2; return 1; }
	done
	insmod "$ko" "$@" || return 1
	[ -d /sys/module/$VN_KO_NAME ]
}

# vn_use_kernel KO MODULES_DIR: on a kernel other than Debian 12's (the
# debug kernel, trixie's, sid's), give modprobe that kernel's modules and
# put KO, built for it, where vn_find_ko looks. /lib and the repo are the
# host's under the guest's tmpfs overlay: the directory is bind-mounted and
# the module copied in the guest only. Two TAP results (uses result, below).
vn_use_kernel() {
	local ko=$1 moddir=$2 rel vermagic
	rel=$(uname -r)
	echo "# kernel $rel: $(cat /proc/cmdline)"
	if [ ! -d "/lib/modules/$rel" ]; then
		mkdir -p "/lib/modules/$rel" && mount --bind "$moddir" "/lib/modules/$rel"
	fi
	# A dry run: the guest scripts load null_blk with their parameters.
	modprobe -nq null_blk && modprobe -nq loop && modprobe -nq dm_mod
	result $? "modprobe finds null_blk, loop and dm_mod ($rel)"
	vermagic=$(modinfo -F vermagic "$ko" 2>/dev/null)
	if [ "${vermagic%% *}" = "$rel" ] && cp "$ko" "$PWD/$VN_KO_NAME.ko"; then
		result 0 "vhost_nvme.ko built for $rel"
	else
		result 1 "vhost_nvme.ko built for $rel (vermagic '$vermagic' of $ko)"
		return 1
	fi
}

# Unload the module. A device still draining its backend after close holds
# the module (rmmod would say EBUSY): give such releases 10 s to end.
vn_unload_module() {
	local i
	[ -d /sys/module/$VN_KO_NAME ] || return 0
	for i in $(seq 100); do
		[ "$(cat /sys/module/$VN_KO_NAME/refcnt 2>/dev/null)" = 0 ] && break
		sleep 0.1
	done
	rmmod "$VN_KO_NAME"
}

# vn_dump_stuck PATTERN: what the processes whose command line matches
# PATTERN are doing (state, wait channel, kernel stack), and every CPU's
# backtrace (sysrq l: a task looping in the kernel is in R state, which the
# watchdog's sysrq w does not show). For a run about to be killed.
vn_dump_stuck() {
	local p
	echo "# stuck: processes matching '$1':"
	for p in $(pgrep -f "$1"); do
		echo "#   pid $p: $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null)"
		echo "#     $(grep -E '^State:' "/proc/$p/status" 2>/dev/null)," \
			"wchan $(cat "/proc/$p/wchan" 2>/dev/null)"
		sed 's/^/#     /' "/proc/$p/stack" 2>/dev/null
	done
	echo l > /proc/sysrq-trigger 2>/dev/null
	echo w > /proc/sysrq-trigger 2>/dev/null
}

# The TAP of a guest script's own steps: the script sets TAP (the file),
# calls result or step for each, and ends with vn_tap_finish.
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
step() {	# step DESCRIPTION CMD...: run CMD, a result of its status
	local d=$1 rc
	shift
	echo "# $d: $*"
	"$@"
	rc=$?
	result $rc "$d"
	return $rc
}
vn_tap_finish() {	# the plan, and exit 1 if a step failed
	echo "1..$n" >> "$TAP"
	exit "$failed"
}
