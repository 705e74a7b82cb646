#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Make fio's headers available to build the external ioengine: install
# fio, liburing-dev and dpkg-dev, fetch the source of the *installed* fio
# package with `apt-get source` (adding deb-src entries mirroring the
# configured deb ones if there are none), unpack it into $FIO_SRC (default
# /var/cache/vhost-nvme/fio-src) and run its ./configure so that
# config-host.h exists. Idempotent and quiet: a second run only checks a
# stamp. Prints FIO_SRC=<dir> on success.
set -euo pipefail

VN_CACHE=${VN_CACHE:-/var/cache/vhost-nvme}
mkdir -p "$VN_CACHE"
FIO_SRC=${FIO_SRC:-$VN_CACHE/fio-src}
log() { echo "fio-src: $*" >&2; }

need=()
for p in fio liburing-dev dpkg-dev; do
	s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$s" = "install ok installed" ] || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || { log "need root to install: ${need[*]}"; exit 1; }
	log "installing ${need[*]}"
	if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			-o Dpkg::Use-Pty=0 "${need[@]}"; } >"$VN_CACHE/fio-src-apt.log" 2>&1; then
		cat "$VN_CACHE/fio-src-apt.log" >&2
		exit 1
	fi
fi

ver=$(dpkg-query -W -f='${Version}' fio)
stamp=$FIO_SRC/.vhost-nvme-fio-src
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$ver" ] && [ -f "$FIO_SRC/config-host.h" ]; then
	echo "FIO_SRC=$FIO_SRC"
	exit 0
fi

have_deb_src() {
	grep -rqsE '^[[:space:]]*(deb-src[[:space:]]|Types:.*deb-src)' \
		/etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null
}
if ! have_deb_src; then
	[ "$(id -u)" -eq 0 ] || { log "no deb-src entries and not root"; exit 1; }
	# Mirror every enabled Debian deb entry as deb-src (same URIs, suites
	# and components), in a file of our own.
	dst=/etc/apt/sources.list.d/vhost-nvme-deb-src
	tmp=$(mktemp)
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		grep -qi 'debian' "$f" || continue
		awk 'BEGIN { RS = ""; ORS = "\n\n" }
		     /(^|\n)Types:[^\n]*deb([ \n]|$)/ && !/Enabled: *no/ {
			sub(/Types:[^\n]*/, "Types: deb-src"); print }' "$f" >> "$tmp"
	done
	if [ -s "$tmp" ]; then
		mv "$tmp" "$dst.sources"
	else
		grep -hE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list \
			/etc/apt/sources.list.d/*.list 2>/dev/null |
			grep -i debian | sed -E 's/^[[:space:]]*deb[[:space:]]/deb-src /' > "$tmp" || true
		[ -s "$tmp" ] || { rm -f "$tmp"; log "no Debian deb entries to mirror as deb-src"; exit 1; }
		mv "$tmp" "$dst.list"
	fi
	chmod 644 "$dst".*
	log "added deb-src entries ($(ls "$dst".*))"
	apt-get update -qq >/dev/null 2>&1 || true
fi

log "fetching the source of fio $ver into $FIO_SRC"
mkdir -p "$VN_CACHE"
work=$(mktemp -d "$VN_CACHE/.fio-src.XXXXXX")
trap 'rm -rf "$work"' EXIT
if ! (cd "$work" && apt-get source -qq "fio=$ver" >apt-source.log 2>&1); then
	# Sources of the exact version may be gone from the mirror; the
	# headers of the suite's version must then do (same ABI in a suite).
	log "fio=$ver not available as source; trying the suite's fio"
	(cd "$work" && apt-get source -qq fio >apt-source.log 2>&1) ||
		{ cat "$work/apt-source.log" >&2; exit 1; }
fi
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'fio-*' | head -n1)
if [ -z "$src" ] || [ ! -f "$src/ioengines.h" ]; then
	log "unexpected source layout"
	exit 1
fi
# As debian/rules configures it, less gfio and libnbd (engines only: the
# structures an engine sees are the same).
(cd "$src" && ./configure --disable-native --prefix=/usr >configure.log 2>&1) ||
	{ tail -n 20 "$src/configure.log" >&2; exit 1; }
[ -f "$src/config-host.h" ] || { log "configure wrote no config-host.h"; exit 1; }
echo "$ver" > "$src/.vhost-nvme-fio-src"
rm -rf "$FIO_SRC.old"
[ ! -e "$FIO_SRC" ] || mv "$FIO_SRC" "$FIO_SRC.old"
mv "$src" "$FIO_SRC"
rm -rf "$FIO_SRC.old"
echo "FIO_SRC=$FIO_SRC"
