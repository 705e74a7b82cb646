#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of `make check-dkms` (run by vm-run.sh): install the module with
# tools/dkms/install.sh (what `make dkms` runs) for the running kernel, load
# it from /lib/modules with modprobe, run the control-plane selftests
# against it, unload it and remove it from DKMS.  The guest's root is the
# host's, read-only, under a tmpfs overlay: /usr/src, DKMS's tree and
# /lib/modules are written in the overlay only.  TAP in $VM_OUT/dkms.tap.
set -uo pipefail
: "${VM_OUT:?run this through tools/testing/vm/vm-run.sh}"
# shellcheck source=guest-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/guest-lib.sh"

TAP=$VM_OUT/dkms.tap
: > "$TAP"

KV=$(uname -r)
in_updates() {
	case $(modinfo -n vhost_nvme 2>/dev/null) in
	"/lib/modules/$KV/updates/dkms/vhost_nvme.ko"*) return 0 ;;
	*) modinfo -n vhost_nvme; return 1 ;;
	esac
}
# The selftests without backends: the control plane runs, the rest skips.
ctl_selftests() {
	local t=tools/testing/selftests/vhost_nvme/vhost_nvme_ctl
	"$t" > "$VM_OUT/selftests-ctl.tap" 2>&1
	grep -E '^ok [0-9]+ ctl\.' "$VM_OUT/selftests-ctl.tap" | grep -vc '# SKIP'
	! grep -Eq '^not ok ' "$VM_OUT/selftests-ctl.tap" &&
		grep -Eq '^ok [0-9]+ ctl\.get_info$' "$VM_OUT/selftests-ctl.tap"
}

# Every version of vhost-nvme that DKMS has, removed from every kernel
dkms_remove() {
	local v
	for v in $(dkms status -m vhost-nvme | sed -n 's|^vhost-nvme/\([^,]*\),.*|\1|p' | sort -u); do
		dkms remove -m vhost-nvme -v "$v" --all || return 1
	done
	! dkms status -m vhost-nvme | grep -q .
}

if step "make dkms: vhost-nvme built and installed for $KV" \
	tools/dkms/install.sh "$KV"; then
	step "the module is DKMS's, in /lib/modules/$KV/updates/dkms" in_updates
	step "modprobe vhost_nvme loads it from there" modprobe vhost_nvme &&
		step "/dev/vhost-nvme is there" test -c /dev/vhost-nvme &&
		step "control-plane selftests pass on it" ctl_selftests
	step "modprobe -r vhost_nvme" modprobe -r vhost_nvme
	step "dkms remove" dkms_remove
fi
vn_tap_finish
