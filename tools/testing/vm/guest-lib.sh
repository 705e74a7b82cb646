# shellcheck shell=bash disable=SC2034
# SPDX-License-Identifier: GPL-2.0
# Helpers for guest scripts run by vm-run.sh (source it; cwd = repo root).

VN_KO_NAME=vhost_nvme
VN_SELFTEST=tools/testing/selftests/vhost_nvme/vhost_nvme_test

# Path of the built module, or nothing.
vn_find_ko() {
	if [ -f "$VN_KO_NAME.ko" ]; then
		echo "$PWD/$VN_KO_NAME.ko"
		return
	fi
	find "$PWD" -name "$VN_KO_NAME.ko" -not -path '*/.git/*' -not -path '*/results/*' \
		2>/dev/null | head -n1
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

vn_unload_module() {
	[ -d /sys/module/$VN_KO_NAME ] || return 0
	rmmod "$VN_KO_NAME"
}
