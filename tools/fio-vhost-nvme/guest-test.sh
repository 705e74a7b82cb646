#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of the fio engine's test in `make check` (called by
# tools/testing/vm/guest-check.sh with vhost_nvme.ko loaded): random writes
# through the engine to a memory-backed null_blk, then fio's crc32c verify
# of every block, in a few engine configurations.
#
#   guest-test.sh RESULTS
#
# Writes one line "0|1 DESCRIPTION" per job to RESULTS (the caller turns them
# into TAP items); logs go to stdout. Uses the engine built on the host
# (make -C tools/fio-vhost-nvme); if it is missing or older than its source,
# builds a private copy in the guest from the cached fio headers.
set -uo pipefail
RES=${1:?usage: guest-test.sh RESULTS}
: > "$RES"
DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
UAPI=$DIR/../../include/uapi/linux/vhost_nvme.h
FIO_SRC=${FIO_SRC:-${VN_CACHE:-/var/cache/vhost-nvme}/fio-src}
SIZE=${FIO_TEST_SIZE:-16M}

res() { echo "$1 $2" >> "$RES"; echo "# fio-engine: $([ "$1" = 0 ] && echo ok || echo FAILED): $2"; }

so=$DIR/fio-vhost-nvme.so
if [ ! -f "$so" ] || [ "$so" -ot "$DIR/fio-vhost-nvme.c" ] || [ "$so" -ot "$UAPI" ]; then
	if [ ! -f "$FIO_SRC/config-host.h" ]; then
		res 1 "fio engine built (no $so and no fio headers in $FIO_SRC: run make -C tools/fio-vhost-nvme on the host)"
		exit 1
	fi
	echo "# fio-engine: building a private copy of the engine in the guest"
	so=/tmp/fio-vhost-nvme.so
	if ! make -s -C "$DIR" FIO_SRC="$FIO_SRC" SO="$so" >/tmp/fio-engine-build.log 2>&1; then
		sed 's/^/#   /' /tmp/fio-engine-build.log
		res 1 "fio engine built"
		exit 1
	fi
fi

# A memory-backed null_blk of our own (the selftests' run.sh removes theirs).
own_nullb=0
if [ -d /sys/module/null_blk ] && ! rmmod null_blk 2>/dev/null; then
	echo "# fio-engine: null_blk is loaded and busy; using the existing /dev/nullb0"
elif modprobe null_blk nr_devices=1 memory_backed=1 gb=1 discard=1; then
	own_nullb=1
fi
if [ ! -b /dev/nullb0 ] || [ "$(cat /sys/module/null_blk/parameters/memory_backed 2>/dev/null)" != "Y" ] &&
   [ "$(cat /sys/module/null_blk/parameters/memory_backed 2>/dev/null)" != "1" ]; then
	res 1 "memory-backed /dev/nullb0 for the fio engine test"
	exit 1
fi

# job NAME FIO-ARGS...: write SIZE at random, then verify every block.
job() {
	local name=$1 out=/tmp/fio-engine-$RANDOM.json rc t0 t1
	shift
	t0=$(date +%s.%N)
	timeout -k 5 120 fio --name=verify --ioengine="external:$so" --filename=/dev/nullb0 \
		--rw=randwrite --size="$SIZE" --iodepth=8 --verify=crc32c --verify_fatal=1 \
		--do_verify=1 --verify_state_save=0 --output-format=json --output="$out" "$@" > /tmp/fio-engine.err 2>&1
	rc=$?
	t1=$(date +%s.%N)
	# fio may put warnings before the JSON in --output.
	if ! python3 - "$out" "$rc" "$name" <<'PY'; then
import json, sys
path, rc, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    s = open(path).read()
    j = json.loads(s[s.index("{"):])["jobs"][0]
except Exception as e:  # noqa: BLE001
    print("#   no JSON from fio (%s)" % e)
    sys.exit(1)
w, r = j["write"], j["read"]
print("#   %s: fio rc %d, error %d, %d writes (%.0f IOPS), %d verify reads (%.0f IOPS, p50 %.0f us)"
      % (name, rc, j["error"], w["total_ios"], w["iops"], r["total_ios"], r["iops"],
         r["clat_ns"].get("percentile", {}).get("50.000000", 0) / 1000))
ok = rc == 0 and j["error"] == 0 and w["total_ios"] > 0 and r["total_ios"] == w["total_ios"]
sys.exit(0 if ok else 1)
PY
		sed 's/^/#   /' /tmp/fio-engine.err
		res 1 "fio engine: $name"
	else
		res 0 "fio engine: $name ($(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s)"
	fi
	rm -f "$out"
}

job "4k randwrite + crc32c verify, $SIZE, QD8, VMM doorbells" --bs=4k
job "128k randwrite + crc32c verify, $SIZE, QD8, shadow doorbells, 2 queues" \
	--bs=128k --shadow_db=1 --nr_queues=2
job "4k randwrite + crc32c verify, 8M, QD8, userspace controller" \
	--bs=4k --size=8M --userspace=1

[ "$own_nullb" = 0 ] || rmmod null_blk
! grep -q '^1 ' "$RES"
