#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot Debian's 6.1 kernel in QEMU and run a bash script inside it.
#
# Usage: vm-run.sh [--smp N] [--mem SIZE] [--timeout SECS] [--idle SECS]
#                  [--append ARGS] [--verbose] --out DIR SCRIPT [ARGS...]
#
# The guest sees the host's whole filesystem read-only (virtio-9p) with a
# tmpfs overlay, so fio, nvme-cli and the module built in the repo are there
# at the same paths. DIR is shared writable at the same absolute path.
# SCRIPT runs with bash, cwd = repo root, VM_OUT=DIR. Afterwards DIR holds:
#   console.log  serial console      status    SCRIPT's exit code
#   guest.log    SCRIPT's output     dmesg.txt guest kernel log
#   warnings.txt kernel warnings found in console.log/dmesg.txt (empty: none)
# Exit status: SCRIPT's status, or 1 on timeout, no status, or kernel warnings.
# SCRIPT may ask for kernel parameters of its own with a line
# "# vm-run-append: ARGS" near its top; they go after --append's.
# --idle SECS kills the VM when its console has been silent that long (a VM
# frozen under nested KVM cannot notice it itself; SCRIPT must print at
# least that often) and leaves DIR/.vmrun/idle behind.
#
# /tmp, /run and /dev in the guest are its own (tmpfs/devtmpfs): a SCRIPT
# from there is copied into DIR, but ARGS naming host files there won't work.
# Environment: VM_ACCEL=tcg|kvm (skip the probe; tcg,thread=single: one
# thread runs every vCPU, as a TCG plugin's inline counters need),
# VM_QEMU_OPTS (more QEMU options, words), VM_QEMU_BIN (another
# qemu-system-x86_64, with virtio-9p; default: the project's build of
# QEMU 10.0, tools/qemu/build-qemu.sh, which also runs the nested guests:
# KVM-in-TCG froze Debian's 7.2 several times a day, 10.0 less often:
# tools/testing/e2e/README.md), KVER/VMLINUZ (see env.sh),
# VM_KERNEL=path (boot this kernel image instead of the extracted vmlinux),
# VM_MODULES_DIR=dir (the modules directory of VM_KERNEL, as `make
# modules_install` lays it out: the initramfs takes its modules from there and
# skips what modules.builtin lists, e.g. a kernel with 9p/overlay built in).
set -euo pipefail

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../env.sh
. "$VM_DIR/../env.sh"
CACHE=$VN_CACHE/vm
LOCK=/tmp/vhost-nvme-vm.lock

SMP=2 MEM=4G TIMEOUT=600 IDLE=0 APPEND='' OUT='' VERBOSE=0
usage() {
	sed -n 's/^# \{0,1\}//; 4,5p' "${BASH_SOURCE[0]}" >&2
	exit 2
}
while [ $# -gt 0 ]; do
	case $1 in
	--smp) SMP=$2; shift 2 ;;
	--mem) MEM=$2; shift 2 ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	--idle) IDLE=$2; shift 2 ;;
	--append) APPEND=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	-v|--verbose) VERBOSE=1; shift ;;
	-h|--help) usage ;;
	--) shift; break ;;
	-*) echo "vm-run: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] && [ -n "$OUT" ] || usage
[[ $TIMEOUT =~ ^[0-9]+$ ]] || { echo "vm-run: bad --timeout" >&2; exit 2; }
[[ $IDLE =~ ^[0-9]+$ ]] || { echo "vm-run: bad --idle" >&2; exit 2; }
SCRIPT=$(realpath -e "$1") || { echo "vm-run: no such script: $1" >&2; exit 2; }
shift

log() { echo "vm-run: $*"; }
die() { echo "vm-run: error: $*" >&2; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

[ -n "$KVER" ] && [ -f "$VMLINUZ" ] || die "no 6.1 kernel (KVER='$KVER'); run tools/testing/deps.sh"
mkdir -p "$OUT" "$CACHE"
OUT=$(realpath "$OUT")
case $OUT in *[[:space:],]*) die "--out path must not contain spaces or commas: $OUT" ;; esac
META=$OUT/.vmrun
rm -rf "$META"
rm -f "$OUT/status" "$OUT/console.log" "$OUT/guest.log" "$OUT/dmesg.txt" "$OUT/warnings.txt"
mkdir -p "$META"

# --- emulator -----------------------------------------------------------------
# build-qemu.sh prints a copy of the binary that no later build rewrites
# (and says what it does on stderr only when it builds).
if [ -n "${VM_QEMU_BIN:-}" ]; then
	VMQEMU=$(command -v "$VM_QEMU_BIN") || die "VM_QEMU_BIN: no $VM_QEMU_BIN"
elif ! VMQEMU=$("$VM_DIR/../../qemu/build-qemu.sh" | tail -n1) || [ ! -x "$VMQEMU" ]; then
	die "building the test VM's QEMU failed (tools/qemu/build-qemu.sh)"
fi

# Two VMs never run at once (2 cores): serialise everything below, including
# cache builds and the accelerator probe.
exec 9>"$LOCK"
if ! flock -n 9; then
	log "waiting for $LOCK (another VM is running)"
	flock 9
fi

# --- kernel: uncompressed ELF vmlinux for a fast PVH boot ------------------
extract_vmlinux() {	# $1 = bzImage, $2 = output
	python3 - "$1" "$2" <<'PY'
import lzma, os, sys
src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
pos = data.find(b"\xfd7zXZ\x00")
while pos >= 0:
    try:
        # Decompresses one stream; the rest of the bzImage ends up in
        # unused_data and is ignored.
        out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[pos:])
    except lzma.LZMAError:
        out = b""
    if out[:4] == b"\x7fELF":
        tmp = dst + ".tmp"
        with open(tmp, "wb") as f:
            f.write(out)
        os.replace(tmp, dst)
        sys.exit(0)
    pos = data.find(b"\xfd7zXZ\x00", pos + 1)
sys.exit("no XZ-compressed ELF found in " + src)
PY
}

KERNEL=${VM_KERNEL:-}
if [ -z "$KERNEL" ]; then
	KERNEL=$CACHE/vmlinux-$KVER
	if [ ! -s "$KERNEL" ] || [ "$VMLINUZ" -nt "$KERNEL" ]; then
		log "extracting vmlinux from $VMLINUZ"
		if ! extract_vmlinux "$VMLINUZ" "$KERNEL"; then
			log "extraction failed; booting the bzImage instead"
			KERNEL=$VMLINUZ
		fi
	fi
fi

# --- initramfs: busybox + virtio/9p/overlay modules ------------------------
MODS="virtio_pci 9pnet 9pnet_virtio 9p netfs fscache overlay"
MODDIR=/lib/modules/$KVER
KNAME=$KVER
INITRD=$CACHE/initramfs-$KVER.cpio
# --- VM_MODULES_DIR: a kernel of one's own (tools/testing/debug-kernel) ---
# netfs and fscache are only dependencies of Debian's 9p module: not asked
# for by name, so a kernel without them (9p built in) needs neither.
if [ -n "${VM_MODULES_DIR:-}" ]; then
	MODDIR=$(realpath -e "$VM_MODULES_DIR") || die "no VM_MODULES_DIR $VM_MODULES_DIR"
	[ -f "$MODDIR/modules.dep" ] && [ -f "$MODDIR/modules.builtin" ] ||
		die "VM_MODULES_DIR $MODDIR has no modules.dep and modules.builtin"
	MODS="virtio_pci 9pnet 9pnet_virtio 9p overlay"
	INITRD=$CACHE/initramfs-${MODDIR##*/}.cpio
	KNAME=${MODDIR##*/}
fi
# --- end VM_MODULES_DIR ---

initrd_inputs() {	# prints one line per input; its hash is the cache key
	echo "format 1 $KVER $MODS"
	cat "$VM_DIR/initramfs-init" "$VM_DIR/stage2.sh" "$(command -v busybox)" | sha256sum
	stat -c '%n %s %Y' "$MODDIR/modules.dep"
	if [ -n "${VM_MODULES_DIR:-}" ]; then
		stat -c '%n %s %Y' "$MODDIR/modules.builtin"
	fi
}

build_initramfs() {
	local bb tmp
	bb=$(command -v busybox) || die "busybox missing"
	file -L "$bb" 2>/dev/null | grep -q 'statically linked' ||
		die "$bb is not static (install busybox-static)"
	tmp=$(mktemp -d "$CACHE/.initramfs.XXXXXX")
	mkdir -p "$tmp"/{bin,dev,proc,sys,mnt,modules}
	cp "$bb" "$tmp/bin/busybox"
	ln -s busybox "$tmp/bin/sh"
	mknod "$tmp/dev/console" c 5 1
	mknod "$tmp/dev/null" c 1 3
	install -m 0755 "$VM_DIR/initramfs-init" "$tmp/init"
	install -m 0755 "$VM_DIR/stage2.sh" "$tmp/stage2.sh"
	# Resolve the wanted modules and their dependencies from modules.dep,
	# dependencies first; decompress .ko.xz/.ko.gz/.ko.zst at build time.
	# shellcheck disable=SC2086
	python3 - "$MODDIR" "$tmp/modules" $MODS <<'PY' || { rm -rf "$tmp"; die "module resolution failed"; }
import gzip, lzma, os, subprocess, sys
mdir, dst, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
deps, byname = {}, {}
for line in open(os.path.join(mdir, "modules.dep")):
    mod, _, rest = line.partition(":")
    deps[mod] = rest.split()
    name = os.path.basename(mod).split(".ko")[0].replace("-", "_")
    byname[name] = mod
builtin = set()
for line in open(os.path.join(mdir, "modules.builtin")):
    builtin.add(os.path.basename(line.strip()).split(".ko")[0].replace("-", "_"))
order, seen = [], set()
def visit(mod):
    if mod in seen:
        return
    seen.add(mod)
    # modules.dep lists dependencies so that loading them in reverse works
    for d in reversed(deps.get(mod, [])):
        visit(d)
    order.append(mod)
for w in wanted:
    w = w.replace("-", "_")
    if w in byname:
        visit(byname[w])
    elif w not in builtin:
        sys.exit("module %s is neither a module nor built in" % w)
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
# Nothing to load (everything built in): an empty list, not one empty line.
open(os.path.join(dst, "order"), "w").write("".join(n + "\n" for n in names))
PY
	(cd "$tmp" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) > "$INITRD.tmp"
	rm -rf "$tmp"
	mv "$INITRD.tmp" "$INITRD"
}

key=$(initrd_inputs | sha256sum | cut -d' ' -f1)
if [ ! -s "$INITRD" ] || [ "$(cat "$INITRD.key" 2>/dev/null)" != "$key" ]; then
	log "building initramfs ($MODS)"
	build_initramfs
	echo "$key" > "$INITRD.key"
fi

# --- accelerator ------------------------------------------------------------
CMDLINE_BASE="console=ttyS0 tsc=reliable panic=-1 quiet loglevel=4"
qemu_base() {	# qemu_base ACCEL: sets the array QBASE
	# A QEMU built without its firmware takes Debian's (-L).
	QBASE=("$VMQEMU" -name vhost-nvme-test -machine pc
	       -accel "$1" -cpu max -nodefaults -no-user-config -display none -no-reboot
	       -L /usr/share/qemu -L /usr/share/seabios)
}

probe_kvm() {	# exit 0 if a stock kernel boots to the initramfs under KVM
	local log=$META/kvm-probe.log
	[ -w /dev/kvm ] || return 1
	qemu_base kvm
	( timeout -k 5 20 "${QBASE[@]}" -smp 1 -m 512M \
		-chardev "file,id=con,path=$log" -serial chardev:con \
		-kernel "$KERNEL" -initrd "$INITRD" \
		-append "$CMDLINE_BASE vmrun.probe" </dev/null >"$META/kvm-probe.out" 2>&1 || true ) \
		2>/dev/null || true
	grep -q VMRUN-PROBE-OK "$log" 2>/dev/null
}

ACCEL=${VM_ACCEL:-}
if [ -z "$ACCEL" ]; then
	probe_key="$KVER $(uname -r) $(cd / && "$VMQEMU" --version | head -n1) $(stat -c %Y "$KERNEL")"
	probe_cache=$CACHE/accel
	if [ -f "$probe_cache" ] && [ "$(head -n1 "$probe_cache")" = "$probe_key" ]; then
		ACCEL=$(sed -n 2p "$probe_cache")
	else
		log "probing whether KVM boots a stock kernel (up to 20 s, once)"
		if probe_kvm; then ACCEL=kvm; else ACCEL=tcg; fi
		printf '%s\n%s\n' "$probe_key" "$ACCEL" > "$probe_cache"
		log "accelerator: $ACCEL (cached in $probe_cache)"
	fi
fi
case $ACCEL in kvm|tcg|tcg,thread=single) ;; *) die "VM_ACCEL must be tcg, tcg,thread=single or kvm, not '$ACCEL'" ;; esac

# --- job ----------------------------------------------------------------------
REPO=$VN_REPO
# The guest has its own /tmp, /run and /dev. A repo there (e.g. a CI clone
# in /tmp) is shared separately and mounted at its path; a script from there
# outside the repo is copied into the output share and run from it.
hidden() { case $1 in /tmp/*|/run/*|/dev/*) return 0 ;; esac; return 1; }
REPO_SHARE=
if hidden "$REPO/"; then
	REPO_SHARE=$REPO
	case $REPO_SHARE in *[[:space:],]*) die "repo path must not contain spaces or commas" ;; esac
fi
GUEST_SCRIPT=$SCRIPT
if hidden "$SCRIPT" && [ "${SCRIPT#"$REPO"/}" = "$SCRIPT" ]; then
	cp "$SCRIPT" "$META/script"
	GUEST_SCRIPT=$OUT/.vmrun/script
fi
GUEST_WD=$((TIMEOUT - 30))
[ $GUEST_WD -ge 10 ] || GUEST_WD=10
{
	printf 'VMRUN_CWD=%q\n' "$REPO"
	printf 'VMRUN_OUT=%q\n' "$OUT"
	printf 'VMRUN_TIMEOUT=%q\n' "$GUEST_WD"
	printf 'VMRUN_REPO_SHARE=%q\n' "$REPO_SHARE"
	printf 'VMRUN_ARGV=('
	printf '%q ' "$GUEST_SCRIPT" "$@"
	printf ')\n'
} > "$META/job"

SCRIPT_APPEND=$(sed -n '1,20s/^# vm-run-append: //p' "$SCRIPT" | head -n1)
CONSOLE=$OUT/console.log
: > "$CONSOLE"
P9="security_model=none,multidevs=remap"
qemu_base "$ACCEL"
# shellcheck disable=SC2054
QEMU=("${QBASE[@]}" -smp "$SMP" -m "$MEM"
	-chardev "file,id=con,path=$CONSOLE" -serial chardev:con
	-chardev "file,id=hb,path=$META/heartbeat" -serial chardev:hb
	-kernel "$KERNEL" -initrd "$INITRD"
	-append "$CMDLINE_BASE${APPEND:+ $APPEND}${SCRIPT_APPEND:+ $SCRIPT_APPEND}"
	-fsdev "local,id=root,path=/,$P9,readonly=on"
	-device virtio-9p-pci,fsdev=root,mount_tag=hostroot
	-fsdev "local,id=out,path=$OUT,$P9"
	-device virtio-9p-pci,fsdev=out,mount_tag=vmout)
if [ -n "$REPO_SHARE" ]; then
	# shellcheck disable=SC2054
	QEMU+=(-fsdev "local,id=repo,path=$REPO_SHARE,$P9,readonly=on"
	       -device virtio-9p-pci,fsdev=repo,mount_tag=vmrepo)
fi
# A human monitor for the watchdog below (a frozen VM's state, an NMI).
MON=$(mktemp -u /tmp/vmrun-mon.XXXXXX)
QEMU+=(-monitor "unix:$MON,server=on,wait=off")
# shellcheck disable=SC2206	# words, as documented
QEMU+=(${VM_QEMU_OPTS:-})
printf '%q ' "${QEMU[@]}" > "$META/qemu-cmdline"

log "booting ${KNAME} ($(basename "$KERNEL"), $ACCEL, smp $SMP, mem $MEM, timeout ${TIMEOUT}s, $VMQEMU): ${SCRIPT#"$REPO"/} $*"
log "console: $CONSOLE"
t0=$(now)
tailpid=
if [ "$VERBOSE" = 1 ]; then
	tail -n +1 -F "$CONSOLE" 2>/dev/null &
	tailpid=$!
fi
qrc=0
timeout -k 10 "$TIMEOUT" "${QEMU[@]}" </dev/null >"$META/qemu.out" 2>&1 &
qpid=$!
# hmp CMD...: each command on the VM's monitor; their output
hmp() {
	python3 - "$MON" "$@" <<'PY' 2>&1
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
def drain():
    out = b""
    while True:
        try:
            d = s.recv(65536)
        except socket.timeout:
            return out
        if not d:
            return out
        out += d
        if out.endswith(b"(qemu) "):
            return out
drain()
for c in sys.argv[2:]:
    s.sendall(c.encode() + b"\n")
    sys.stdout.write(drain().decode(errors="replace").replace("\r", ""))
PY
}
if [ "$IDLE" -gt 0 ]; then
	# The CPU time QEMU used while the console was silent tells a
	# halted vCPU (a frozen VM: next to nothing) from a busy one.
	cputicks() {	# utime + stime of QEMU (timeout's child), in ticks
		local c
		c=$(pgrep -P "$qpid" | head -n1) || c=
		awk '{ print $14 + $15 }' "/proc/${c:-$qpid}/stat" 2>/dev/null || echo 0
	}
	last=$(date +%s) lastsz=-1 lastcpu=0 lasthb=0
	# A frozen VM: neither console nor heartbeat for FREEZE s, QEMU
	# nearly idle in the last 20-40 s (under 5% of a CPU: its vCPUs halted
	# with nothing to wake them; nested KVM under TCG does that, see
	# tools/testing/e2e/README.md).  Not since the last output: a VM that
	# froze after a busy stretch would only look idle after minutes, and
	# --idle would kill it before the second dump freeze-class.py needs.  It is woken once with stop and cont
	# (the vCPUs look at their interrupts again), then once with an NMI;
	# each attempt is in .vmrun/revive, one that worked in .vmrun/revived.
	FREEZE=${VM_FREEZE_SECS:-60}
	lapics=()	# "info lapic" shows the monitor's current vCPU
	for ((c = 0; c < SMP; c++)); do
		lapics+=("cpu $c" "info lapic")
	done
	act=$(date +%s) hbsz=0 tries=0 gaveup=0
	win_t=$act win_c=0 prev_t=$act prev_c=0
	quiet() {	# QEMU used under 5% of a CPU since prev_t
		[ $(( ($(cputicks) - prev_c) * 1000 / $(getconf CLK_TCK) )) -lt \
		  $(( (now - prev_t) * 50 )) ]
	}
	while kill -0 "$qpid" 2>/dev/null; do
		sleep 5
		sz=$(stat -c %s "$CONSOLE" 2>/dev/null || echo 0)
		h=$(stat -c %s "$META/heartbeat" 2>/dev/null || echo 0)
		now=$(date +%s)
		if [ $((now - win_t)) -ge 20 ]; then
			prev_t=$win_t prev_c=$win_c win_t=$now win_c=$(cputicks)
		fi
		if [ "$sz" != "$lastsz" ] || [ "$h" != "$hbsz" ]; then
			if [ "$tries" -gt 0 ]; then
				log "the VM runs again after: $(tail -n1 "$META/revive")"
				tail -n1 "$META/revive" >> "$META/revived"
			fi
			act=$now hbsz=$h tries=0
		elif [ $((now - act)) -ge "$FREEZE" ] && [ "$tries" -ge 2 ] && quiet; then
			# Neither woke it: no need to wait for --idle.
			gaveup=1
		elif [ $((now - act)) -ge "$FREEZE" ] && quiet; then
			{
				echo "=== after $((now - act)) s without output (attempt $((tries + 1)))"
				hmp "info registers -a" "${lapics[@]}" "info pic"
			} >> "$META/frozen.txt" 2>&1 || true
			if [ "$tries" = 0 ]; then
				what="stop and cont"
				hmp stop cont > /dev/null 2>&1 || true
			else
				what="an NMI"
				hmp nmi > /dev/null 2>&1 || true
			fi
			echo "frozen for $((now - act)) s ($(grep -c 'HLT=1' "$META/frozen.txt") halted vCPU states in .vmrun/frozen.txt): $what" >> "$META/revive"
			log "no output for $((now - act)) s and QEMU idle: the VM froze; waking it with $what"
			tries=$((tries + 1)) act=$now
		fi
		if [ "$sz" != "$lastsz" ]; then
			lastsz=$sz last=$now lastcpu=$(cputicks)
			lasthb=$h
		elif [ $((now - last)) -ge "$IDLE" ] || [ "$gaveup" = 1 ]; then
			cpu=$(( ($(cputicks) - lastcpu) * 1000 / $(getconf CLK_TCK) ))
			# The heartbeat (stage2.sh) tells a frozen VM from a
			# blocked script.
			hb="no heartbeat meanwhile: the VM froze"
			if [ "$(stat -c %s "$META/heartbeat" 2>/dev/null || echo 0)" -gt "$lasthb" ]; then
				hb="heartbeat went on: the VM ran, its script printed nothing; last: $(tail -n1 "$META/heartbeat" | tr -d '\r')"
			elif [ -s "$META/revive" ]; then
				hb+="; woken without effect: $(tr '\n' ';' < "$META/revive")"
			fi
			# A halted vCPU that does not take a deliverable
			# interrupt is the emulator's freeze (freeze-class.py).
			if [ -s "$META/frozen.txt" ]; then
				python3 "$VM_DIR/freeze-class.py" "$META/frozen.txt" > "$META/frozen-class" 2>&1 || true
				hb+="; $(cat "$META/frozen-class")"
			fi
			log "console silent for $((now - last))s (QEMU used ${cpu} ms of CPU meanwhile; $hb): killing the VM"
			printf '%s\n%s\n%s\n' "$cpu" "$hb" "$((now - last))" > "$META/idle"
			kill "$qpid" 2>/dev/null || true
			break
		fi
	done
fi
wait "$qpid" || qrc=$?
rm -f "$MON"
t1=$(now)
if [ -n "$tailpid" ]; then
	sleep 0.3
	kill "$tailpid" 2>/dev/null || true
	wait "$tailpid" 2>/dev/null || true
fi
flock -u 9

# --- results ------------------------------------------------------------------
rc=0
if [ -f "$META/ready" ]; then
	tr=$(date -r "$META/ready" +%s.%N)
	msg="boot $(secs "$t0" "$tr")s"
	if [ -f "$OUT/status" ]; then
		msg+=", script $(secs "$tr" "$(date -r "$OUT/status" +%s.%N)")s"
	fi
	log "$msg, total $(secs "$t0" "$t1")s"
fi

# Kernel messages only (timestamped printk lines), so a script that prints
# "WARNING:" itself does not trip the scan.
WARN_RE='WARNING:|BUG:|Oops|KASAN|UBSAN|possible circular locking|lockdep|general protection|Call Trace|kernel BUG|soft lockup|hung_task|blocked for more than'
# Boot banners of a debug kernel (VM_KERNEL with lockdep) that are no warning.
WARN_IGNORE_RE='rcu:[[:space:]]+RCU lockdep checking is enabled\.$'
{
	grep -aE '\[ *[0-9]+\.[0-9]+\] ' "$CONSOLE" 2>/dev/null | grep -aE "$WARN_RE" || true
	grep -aE '\[ *[0-9]+\.[0-9]+\] ' "$OUT/dmesg.txt" 2>/dev/null | grep -aE "$WARN_RE" || true
} | tr -d '\r' | sed -E 's/^.*(\[ *[0-9]+\.[0-9]+\] )/\1/' | { grep -avE "$WARN_IGNORE_RE" || true; } |
	awk '!seen[$0]++' > "$OUT/warnings.txt"

tail_console() {
	echo "---- last 40 lines of $CONSOLE ----" >&2
	tail -n 40 "$CONSOLE" >&2
	echo "----" >&2
}

if [ -s "$META/qemu.out" ]; then
	grep -v '^$' "$META/qemu.out" | sed 's/^/vm-run: qemu: /' >&2 || true
fi
if [ -f "$OUT/status" ]; then
	rc=$(cat "$OUT/status")
	[[ $rc =~ ^[0-9]+$ ]] || rc=1
	log "guest script exited with status $rc"
else
	rc=1
	if [ -f "$META/idle" ]; then
		echo "vm-run: FAIL: the VM's console was silent for $(sed -n 3p "$META/idle")s ($(sed -n 2p "$META/idle")): killed" >&2
	elif [ -f "$META/watchdog" ]; then
		echo "vm-run: FAIL: guest watchdog fired (script ran longer than ${GUEST_WD}s)" >&2
	elif [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
		echo "vm-run: FAIL: VM killed after ${TIMEOUT}s timeout; the guest never wrote a status" >&2
	elif grep -q VMRUN-INIT-FAILED "$CONSOLE"; then
		echo "vm-run: FAIL: initramfs failed: $(grep -a VMRUN-INIT-FAILED "$CONSOLE" | head -n1)" >&2
	elif grep -q 'iotlb_to_section: Assertion' "$META/qemu.out" 2>/dev/null; then
		# QEMU's own race under multi-threaded TCG: a vCPU's TLB
		# still holds a section index of the memory map another
		# vCPU's change replaced (../shared/TESTBED.md).
		w="after the guest's script started"
		[ -f "$META/ready" ] || w="before the guest's script started"
		echo "vm-run: FAIL: the emulator aborted (QEMU's TCG memory map race, iotlb_to_section) $w" >&2
	else
		echo "vm-run: FAIL: VM exited (qemu status $qrc) without the guest writing a status" >&2
	fi
	[ "$VERBOSE" = 1 ] || tail_console
fi
if [ -s "$OUT/warnings.txt" ]; then
	echo "vm-run: FAIL: kernel warnings in the guest:" >&2
	sed 's/^/  /' "$OUT/warnings.txt" >&2
	rc=1
fi
exit "$rc"
