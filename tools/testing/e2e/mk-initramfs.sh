#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the nested (L2) guest's initramfs: static busybox and fio, nvme-cli
# and mkfs.ext4 with their libraries, the nvme/ext4 modules of the test
# kernel, l2-init, l2-tests.sh and mark (tools/bench/icount/mark.c, built
# static: make bench-icount's markers). Cached by content; prints its path.
# Usage: mk-initramfs.sh KVER FIO [min]
#   min: busybox, fio and the nvme module only (3 MB instead of 20: the
#        nested TCG guest unpacks it in a fraction of the time).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KVER=$1
FIO=$2
CACHE=${VN_E2E_CACHE:-${VN_CACHE:-/var/cache/vhost-nvme}/e2e}
OUT=$CACHE/l2-initramfs-$KVER.cpio
MODS="nvme ext4 crc32c_generic virtio_pci virtio_blk"
BINS=(/usr/sbin/nvme /sbin/mkfs.ext4)
if [ "${3:-}" = min ]; then
	OUT=$CACHE/l2-initramfs-min-$KVER.cpio
	MODS="nvme"
	BINS=()
fi

log() { echo "mk-initramfs: $*" >&2; }
die() { log "error: $*"; exit 1; }

BB=$(command -v busybox) || die "busybox missing"
file -L "$BB" | grep -q 'statically linked' || die "$BB is not static (busybox-static)"
for b in "${BINS[@]}"; do [ -x "$b" ] || die "$b missing (nvme-cli, e2fsprogs)"; done
[ -x "$FIO" ] || die "no fio at $FIO"

MARK=$HERE/../../bench/icount/mark.c
inputs() {
	echo "format 3 $KVER $MODS ${BINS[*]}"
	cat "$HERE/l2-init" "$HERE/l2-tests.sh" "$BB" "$FIO" "$MARK" "${BINS[@]}" | sha256sum
	stat -c '%n %s %Y' "/lib/modules/$KVER/modules.dep"
}
key=$(inputs | sha256sum | cut -d' ' -f1)
if [ -s "$OUT" ] && [ "$(cat "$OUT.key" 2>/dev/null)" = "$key" ]; then
	echo "$OUT"
	exit 0
fi
log "building $OUT"
mkdir -p "$CACHE"
tmp=$(mktemp -d "$CACHE/.l2-initramfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,mnt,modules,e2e,etc,lib64}
cp "$BB" "$tmp/bin/busybox"
for a in $("$BB" --list); do
	[ -e "$tmp/bin/$a" ] || ln -s busybox "$tmp/bin/$a"
done
cp "$FIO" "$tmp/usr/bin/fio"
gcc -O2 -static -o "$tmp/usr/bin/mark" "$MARK" || die "cannot build $MARK"
for b in "${BINS[@]}"; do
	cp "$b" "$tmp/usr/sbin/"
	# The libraries, at the paths the dynamic loader looks at.
	ldd "$b" | awk '/=> \//{print $3} /^\t\/lib64/{print $1}' | while read -r l; do
		mkdir -p "$tmp$(dirname "$l")"
		cp -L "$l" "$tmp$l"
	done
done
if [ ${#BINS[@]} -gt 0 ]; then
	rm -f "$tmp/sbin/mkfs.ext4"
	ln -sf /usr/sbin/mkfs.ext4 "$tmp/sbin/mkfs.ext4"
fi
mknod "$tmp/dev/console" c 5 1
mknod "$tmp/dev/null" c 1 3
install -m 0755 "$HERE/l2-init" "$tmp/init"
install -m 0755 "$HERE/l2-tests.sh" "$tmp/e2e/l2-tests.sh"
echo "root:x:0:0:root:/:/bin/sh" > "$tmp/etc/passwd"
# Modules and their dependencies, dependencies first, decompressed.
# shellcheck disable=SC2086
python3 - "/lib/modules/$KVER" "$tmp/modules" $MODS <<'PY'
import gzip, lzma, os, subprocess, sys
mdir, dst, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
deps, byname = {}, {}
for line in open(os.path.join(mdir, "modules.dep")):
    mod, _, rest = line.partition(":")
    deps[mod] = rest.split()
    byname[os.path.basename(mod).split(".ko")[0].replace("-", "_")] = mod
order, seen = [], set()
def visit(mod):
    if mod in seen:
        return
    seen.add(mod)
    for d in reversed(deps.get(mod, [])):
        visit(d)
    order.append(mod)
for w in wanted:
    w = w.replace("-", "_")
    if w not in byname:
        sys.exit("module %s not found" % w)
    visit(byname[w])
names = []
for mod in order:
    src = os.path.join(mdir, mod)
    base = os.path.basename(mod).split(".ko")[0] + ".ko"
    if mod.endswith(".xz"):
        data = lzma.open(src).read()
    elif mod.endswith(".gz"):
        data = gzip.open(src).read()
    elif mod.endswith(".zst"):
        data = subprocess.run(["zstd", "-dc", src], check=True, capture_output=True).stdout
    else:
        data = open(src, "rb").read()
    open(os.path.join(dst, base), "wb").write(data)
    names.append(base)
open(os.path.join(dst, "order"), "w").write("\n".join(names) + "\n")
PY
(cd "$tmp" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "$key" > "$OUT.key"
log "$(du -h "$OUT" | cut -f1) initramfs"
echo "$OUT"
