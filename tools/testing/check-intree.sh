#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check-intree`: build the driver once the way it is built inside a
# kernel tree, and run its selftests through the kernel's kselftest framework.  An overlay of Debian's linux-source-6.1 (symbolic links,
# the source itself never modified) gets drivers/vhost/nvme and the uapi
# header copied in, drivers/vhost/Kconfig sourcing drivers/vhost/nvme/Kconfig
# and drivers/vhost/Makefile descending into nvme/; the configuration is
# Debian's (from its 6.1 headers) with CONFIG_VHOST_NVME=m set through
# Kconfig.  Then `make modules_prepare` and `make M=drivers/vhost/nvme`,
# with W=1 and Debian's release name (so that its vermagic is the VM
# kernel's).  The selftests are copied in as tools/testing/selftests/vhost_nvme,
# built with `make -C tools/testing/selftests TARGETS=vhost_nvme` (after
# `make headers`, which installs the driver's uapi header), and run in the
# test VM through the framework's run_tests: first without the module
# (run.sh must be reported skipped), then with the in-tree module loaded.
# Items: the option is offered, the module builds without a warning,
# modinfo reads it, the kselftest build and both runs.  Ends with "N passed, N failed"; exits 1
# if anything failed.  The overlay is kept in $INTREE_DIR (default
# $VN_CACHE/intree) and reused; logs go to $RESULTS (results/check-intree).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
# shellcheck source=items.sh
. tools/testing/items.sh

items_lane check-intree --kbuild
# shellcheck source=env.sh
. tools/testing/env.sh

TREE=${INTREE_DIR:-$VN_CACHE/intree}/linux
if [ ! -f "$TREE/Makefile" ]; then
	echo "check-intree: overlay of $KSRC in $TREE"
	rm -rf "$TREE"
	mkdir -p "$(dirname "$TREE")"
	cp -rs "$KSRC" "$TREE"
fi
# This driver, as files of the tree (replacing any links or older copies).
rm -rf "$TREE/drivers/vhost/nvme" "$TREE/include/uapi/linux/vhost_nvme.h"
cp -r drivers/vhost/nvme "$TREE/drivers/vhost/nvme"
rm -f "$TREE"/drivers/vhost/nvme/*.o "$TREE"/drivers/vhost/nvme/.*.cmd
cp include/uapi/linux/vhost_nvme.h "$TREE/include/uapi/linux/"
for f in Kconfig Makefile; do
	cp --remove-destination "$KSRC/drivers/vhost/$f" "$TREE/drivers/vhost/$f"
done
sed -i '/^endif/i source "drivers/vhost/nvme/Kconfig"\n' "$TREE/drivers/vhost/Kconfig"
echo 'obj-$(CONFIG_VHOST_NVME) += nvme/' >> "$TREE/drivers/vhost/Makefile"

# The selftests, as tools/testing/selftests/vhost_nvme of the tree.
rm -rf "$TREE/tools/testing/selftests/vhost_nvme"
mkdir -p "$TREE/tools/testing/selftests/vhost_nvme"
git ls-files -z tools/testing/selftests/vhost_nvme |
	xargs -0 cp -t "$TREE/tools/testing/selftests/vhost_nvme"

# Debian's configuration and release name (its modules' vermagic), and the
# driver through Kconfig.
cfg=/usr/src/linux-headers-$KVER/.config
KREL=$(sed -n 's/.*UTS_RELEASE "\(.*\)"/\1/p' \
	"/usr/src/linux-headers-$KVER/include/generated/utsrelease.h")
cp --remove-destination "$cfg" "$TREE/.config"
cp --remove-destination "/usr/src/linux-headers-$KVER/Module.symvers" "$TREE/"
if run_logged "$RES/config.log" bash -c "cd '$TREE' && make olddefconfig &&
	   scripts/config --module VHOST_NVME && make olddefconfig" &&
   grep -qx 'CONFIG_VHOST_NVME=m' "$TREE/.config"; then
	item pass "Kconfig offers VHOST_NVME (tristate, set to m)"
else
	item fail "Kconfig offers VHOST_NVME" "see $RES/config.log"
fi

nproc=$(nproc)
if run_logged "$RES/prepare.log" make -C "$TREE" -j"$nproc" KERNELRELEASE="$KREL" modules_prepare &&
   run_logged "$RES/build.log" make -C "$TREE" -j"$nproc" KERNELRELEASE="$KREL" W=1 M=drivers/vhost/nvme modules &&
   [ -f "$TREE/drivers/vhost/nvme/vhost_nvme.ko" ] &&
   ! grep -E '(warning|error):' "$RES/build.log" | grep -v 'Module.symvers is missing' | grep -q .; then
	item pass "in-tree build: drivers/vhost/nvme/vhost_nvme.ko, W=1, no warning"
else
	item fail "in-tree build" "see $RES/prepare.log, $RES/build.log"
	grep -E '(warning|error):' "$RES/build.log" 2>/dev/null | head -n 20 | sed 's/^/    /' || true
fi
if modinfo "$TREE/drivers/vhost/nvme/vhost_nvme.ko" > "$RES/modinfo.txt" 2>&1 &&
   grep -q "^vermagic: *$KREL " "$RES/modinfo.txt"; then
	item pass "modinfo: $(grep '^vermagic' "$RES/modinfo.txt" | tr -s ' ')"
else
	item fail "modinfo of the in-tree module" "see $RES/modinfo.txt"
fi

# The kselftest framework: build, then run in the test VM (first without the
# module: run.sh must skip; then with the in-tree module).
if run_logged "$RES/headers.log" make -C "$TREE" KERNELRELEASE="$KREL" headers &&
   [ -f "$TREE/usr/include/linux/vhost_nvme.h" ] &&
   run_logged "$RES/kselftest-build.log" make -C "$TREE/tools/testing/selftests" TARGETS=vhost_nvme &&
   ! grep -E '(warning|error):' "$RES/kselftest-build.log" | grep -q .; then
	item pass "kselftest build: make -C tools/testing/selftests TARGETS=vhost_nvme, no warning"
	echo "check-intree: running tools/testing/vm/guest-intree.sh in a VM"
	tools/testing/vm/vm-run.sh --timeout 2400 --out "$RES/vm" \
		tools/testing/vm/guest-intree.sh "$TREE" 2>&1 | sed 's/^/    /' || true
	if [ -s "$RES/vm/intree.tap" ]; then
		tap_items "kselftest" "$RES/vm/intree.tap"
	else
		item fail "guest-intree.sh reported nothing" "see $RES/vm/guest.log"
	fi
	if [ -s "$RES/vm/warnings.txt" ]; then
		item fail "no kernel warnings in the VM" "see $RES/vm/warnings.txt"
	else
		item pass "no kernel warnings in the VM"
	fi
else
	item fail "kselftest build" "see $RES/headers.log, $RES/kselftest-build.log"
	grep -E '(warning|error):' "$RES/kselftest-build.log" 2>/dev/null | head -n 20 | sed 's/^/    /' || true
fi

echo "check-intree: logs in $RES"
items_end
