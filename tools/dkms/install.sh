#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make dkms`: install vhost-nvme with DKMS.  The module's sources (Kbuild,
# drivers/vhost/nvme, the uapi header) and dkms.conf go to
# /usr/src/vhost-nvme-VERSION, are added to DKMS (replacing an earlier add
# of the same version), and built and installed for each kernel given as an
# argument, by default every kernel in /lib/modules that has its headers
# (/lib/modules/KVER/build).  DKMS rebuilds them for kernels installed later
# (AUTOINSTALL).  VERSION is 0.git<commit>[.dirty], or $VNVME_VERSION.
# Needs root and the dkms package.
#
#   tools/dkms/install.sh [KVER...]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NAME=vhost-nvme
die() { echo "dkms-install: $*" >&2; exit 1; }

command -v dkms > /dev/null || die "dkms is not installed (apt-get install dkms)"
[ "$(id -u)" -eq 0 ] || die "needs root"
if [ -z "${VNVME_VERSION:-}" ]; then
	rev=$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null) ||
		die "not a git checkout: set VNVME_VERSION"
	VNVME_VERSION=0.git$rev
	git -C "$REPO" diff --quiet HEAD -- Kbuild drivers include dkms.conf ||
		VNVME_VERSION+=.dirty
fi
SRC=/usr/src/$NAME-$VNVME_VERSION

if [ $# -eq 0 ]; then
	for b in /lib/modules/*/build; do
		[ -e "$b/Makefile" ] && set -- "$@" "$(basename "$(dirname "$b")")"
	done
	[ $# -gt 0 ] || die "no kernel in /lib/modules has its headers"
fi

# The sources, as the out-of-tree build needs them, nothing else.
rm -rf "$SRC"
mkdir -p "$SRC/drivers/vhost/nvme" "$SRC/include/uapi/linux"
cp "$REPO/Kbuild" "$SRC/"
cp "$REPO"/drivers/vhost/nvme/*.[ch] "$REPO/drivers/vhost/nvme/Makefile" \
   "$REPO/drivers/vhost/nvme/Kconfig" "$SRC/drivers/vhost/nvme/"
cp "$REPO/include/uapi/linux/vhost_nvme.h" "$SRC/include/uapi/linux/"
sed "s/@VERSION@/$VNVME_VERSION/" "$REPO/dkms.conf" > "$SRC/dkms.conf"

if dkms status -m "$NAME" -v "$VNVME_VERSION" | grep -q .; then
	dkms remove -m "$NAME" -v "$VNVME_VERSION" --all
fi
dkms add -m "$NAME" -v "$VNVME_VERSION"
for k in "$@"; do
	dkms install -m "$NAME" -v "$VNVME_VERSION" -k "$k"
done
dkms status -m "$NAME"
