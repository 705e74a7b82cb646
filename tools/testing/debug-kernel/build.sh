#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the debug kernel of `make check-debug`: Debian's linux-source-6.1
# (unpacked in $KSRC by tools/testing/deps.sh, never modified: built with O=)
# from `make x86_64_defconfig` plus tools/testing/debug-kernel/debug.config
# (KASAN, lockdep, kmemleak, fault injection; the test VM's drivers built in).
# Idempotent and quiet; progress goes to stderr, the path of vmlinux to stdout.
#
#   build.sh               build if needed, print the path of vmlinux
#   build.sh --print-env   same, but print DK_VMLINUX, DK_BUILD, DK_RELEASE
#                          and DK_MODULES_DIR (a modules directory laid out
#                          by `make modules_install`, for VM_MODULES_DIR)
#
# Cache: $DK_CACHE (default $VN_CACHE/debug-kernel): build/ (the O= tree,
# reused incrementally), modules/ (modules_install), build.log, build-time.
# Nothing happens when the stamp (a hash of the fragment, the source
# version and the compiler) matches. The compile runs under nice -n
# $DK_NICE (10) with $DK_JOBS (nproc) jobs. DK_VERBOSE=1: full make output.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/../env.sh
. "$HERE/../env.sh"
DK=${DK_CACHE:-$VN_CACHE/debug-kernel}
FRAG=$HERE/debug.config
NICE=${DK_NICE:-10}
JOBS=${DK_JOBS:-$(nproc)}
PRINT_ENV=0
# QEMU's PVH entry runs xen_prepare_pvh() (arch/x86/platform/pvh/enlighten.c)
# before startup_64 has set up KASAN's shadow. 6.1 instruments it and the
# memcmp() it calls (lib/string.c), so the kernel dies at the first access
# to the shadow (a #GP, then a triple fault, and an empty console). Build
# both uninstrumented: enlighten.o as head64.c is, string.o as 6.1 itself
# does whenever CONFIG_AMD_MEM_ENCRYPT is set (for the same reason: early
# boot). No other enlighten.o or string.o in this config is instrumented.
MAKEVARS=(KASAN_SANITIZE_enlighten.o=n KASAN_SANITIZE_string.o=n)
case ${1:-} in
--print-env) PRINT_ENV=1 ;;
'') ;;
*) echo "usage: $0 [--print-env]" >&2; exit 2 ;;
esac

log() { echo "debug-kernel: $*" >&2; }
die() { log "error: $*"; exit 1; }

if [ ! -f "$KSRC/Makefile" ] || [ ! -f "$KSRC/scripts/kconfig/merge_config.sh" ]; then
	die "no kernel source in $KSRC; run tools/testing/deps.sh"
fi
[ -f "$FRAG" ] || die "no $FRAG"
mkdir -p "$DK"
exec 9> "$DK/.lock"
if ! flock -n 9; then
	log "waiting for $DK/.lock (another build is running)"
	flock 9
fi

O=$DK/build
MODS=$DK/modules
LOG=$DK/build.log
srcver=$(make -s -C "$KSRC" kernelversion 2>/dev/null) || die "cannot read the kernel version of $KSRC"
key=$({
	echo "debug-kernel format 2 ${MAKEVARS[*]}"
	echo "source $srcver"
	cat "$KSRC/.vhost-nvme-unpacked" 2>/dev/null || true
	gcc --version | head -n1
	cat "$FRAG"
} | sha256sum | cut -d' ' -f1)

emit() {
	local rel
	rel=$(cat "$O/include/config/kernel.release")
	if [ "$PRINT_ENV" = 1 ]; then
		printf 'DK_VMLINUX=%q\nDK_BUILD=%q\nDK_RELEASE=%q\nDK_MODULES_DIR=%q\n' \
			"$O/vmlinux" "$O" "$rel" "$MODS/lib/modules/$rel"
	else
		echo "$O/vmlinux"
	fi
}

if [ "$(cat "$DK/stamp" 2>/dev/null)" = "$key" ] && [ -s "$O/vmlinux" ] &&
   [ -f "$O/Module.symvers" ] && [ -f "$O/include/config/kernel.release" ] &&
   [ -f "$MODS/lib/modules/$(cat "$O/include/config/kernel.release")/modules.builtin" ]; then
	log "up to date ($srcver, key ${key:0:12})"
	emit
	exit 0
fi

quiet() {	# quiet CMD...: run CMD with output appended to $LOG
	if [ "${DK_VERBOSE:-0}" = 1 ]; then
		"$@" 2>&1 | tee -a "$LOG" >&2
		return "${PIPESTATUS[0]}"
	fi
	if ! "$@" >> "$LOG" 2>&1; then
		tail -n 30 "$LOG" | sed 's/^/    /' >&2
		log "failed: $* (log: $LOG)"
		return 1
	fi
}

# Every line of the fragment must hold in the final .config: a symbol that
# Kconfig dropped or overrode (a missing dependency, a renamed option) fails
# the build instead of silently giving a different kernel.
check_config() {
	local line sym bad=0
	while IFS= read -r line; do
		case $line in
		CONFIG_*=*)
			grep -qxF "$line" "$O/.config" && continue
			sym=${line%%=*}
			log "config: wanted $line, got '$(grep -E "^$sym=|^# $sym is not set" "$O/.config" || echo unset)'"
			bad=1
			;;
		"# CONFIG_"*" is not set")
			sym=${line#\# }
			sym=${sym%% *}
			grep -qE "^$sym=" "$O/.config" || continue
			log "config: wanted $sym unset, got '$(grep -E "^$sym=" "$O/.config")'"
			bad=1
			;;
		esac
	done < "$FRAG"
	return $bad
}

t0=$(date +%s)
: > "$LOG"
mkdir -p "$O"
rm -f "$DK/stamp"
log "configuring $srcver (x86_64_defconfig + ${FRAG#"$VN_REPO"/}) in $O"
quiet make -C "$KSRC" O="$O" x86_64_defconfig
quiet "$KSRC/scripts/kconfig/merge_config.sh" -m -O "$O" "$O/.config" "$FRAG"
quiet make -C "$KSRC" O="$O" olddefconfig
check_config || die "the fragment does not hold in $O/.config"

heartbeat() {	# one line a minute, so that CI sees the build is alive
	local s=0
	while sleep 60; do
		s=$((s + 60))
		log "  building: $((s / 60)) min, $(find "$O" -name '*.o' 2>/dev/null | wc -l) objects"
	done
}
log "building vmlinux and modules (-j$JOBS, nice $NICE; log: $LOG)"
heartbeat &
hb=$!
trap 'kill $hb 2>/dev/null || true' EXIT
rc=0
quiet nice -n "$NICE" make -C "$KSRC" O="$O" "${MAKEVARS[@]}" -j"$JOBS" vmlinux modules || rc=$?
kill $hb 2>/dev/null || true
wait $hb 2>/dev/null || true
trap - EXIT
[ $rc -eq 0 ] || die "kernel build failed"

rel=$(cat "$O/include/config/kernel.release")
rm -rf "$MODS"
quiet make -C "$KSRC" O="$O" "${MAKEVARS[@]}" INSTALL_MOD_PATH="$MODS" modules_install
[ -f "$MODS/lib/modules/$rel/modules.builtin" ] || die "modules_install left no modules.builtin"
# The build tree links back to $KSRC; the guest needs no such links.
rm -f "$MODS/lib/modules/$rel/build" "$MODS/lib/modules/$rel/source"

t1=$(date +%s)
echo "$((t1 - t0))" > "$DK/build-time"
echo "$key" > "$DK/stamp"
log "built $rel in $(((t1 - t0) / 60))m$(((t1 - t0) % 60))s"
emit
