#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check-intree`: build the driver once the way it is built inside a
# kernel tree.  An overlay of Debian's linux-source-6.1 (symbolic links,
# the source itself never modified) gets drivers/vhost/nvme and the uapi
# header copied in, drivers/vhost/Kconfig sourcing drivers/vhost/nvme/Kconfig
# and drivers/vhost/Makefile descending into nvme/; the configuration is
# Debian's (from its 6.1 headers) with CONFIG_VHOST_NVME=m set through
# Kconfig.  Then `make modules_prepare` and `make M=drivers/vhost/nvme`,
# with W=1.  Items: the option is offered, the module builds without a
# warning, and modinfo reads it.  Ends with "N passed, N failed"; exits 1
# if anything failed.  The overlay is kept in $INTREE_DIR (default
# $VN_CACHE/intree) and reused; logs go to $RESULTS (results/intree).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
RES=${RESULTS:-$REPO/results/intree}
rm -rf "$RES"
mkdir -p "$RES"
SUMMARY=$RES/summary.txt
: > "$SUMMARY"
ITEM_TAG=check-intree
# shellcheck source=items.sh
. tools/testing/items.sh

if run_logged "$RES/deps.log" tools/testing/deps.sh --kbuild; then
	item pass "deps"
else
	item fail "deps" "see $RES/deps.log"
	show "$RES/deps.log"
fi
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

# Debian's configuration, and the driver through Kconfig.
cfg=/usr/src/linux-headers-$KVER/.config
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
if run_logged "$RES/prepare.log" make -C "$TREE" -j"$nproc" modules_prepare &&
   run_logged "$RES/build.log" make -C "$TREE" -j"$nproc" W=1 M=drivers/vhost/nvme modules &&
   [ -f "$TREE/drivers/vhost/nvme/vhost_nvme.ko" ] &&
   ! grep -E '(warning|error):' "$RES/build.log" | grep -v 'Module.symvers is missing' | grep -q .; then
	item pass "in-tree build: drivers/vhost/nvme/vhost_nvme.ko, W=1, no warning"
else
	item fail "in-tree build" "see $RES/prepare.log, $RES/build.log"
	grep -E '(warning|error):' "$RES/build.log" 2>/dev/null | head -n 20 | sed 's/^/    /' || true
fi
if modinfo "$TREE/drivers/vhost/nvme/vhost_nvme.ko" > "$RES/modinfo.txt" 2>&1 &&
   grep -q '^vermagic: *6\.1\.' "$RES/modinfo.txt"; then
	item pass "modinfo: $(grep '^vermagic' "$RES/modinfo.txt" | tr -s ' ')"
else
	item fail "modinfo of the in-tree module" "see $RES/modinfo.txt"
fi

echo "check-intree: logs in $RES"
echo "$PASS passed, $FAIL failed, $SKIP skipped"
[ "$FAIL" -eq 0 ]
