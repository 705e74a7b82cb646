#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Instructions per I/O from a `make bench-icount` run.

icount-report.py RUNS PLUGIN_LOG OUT_PREFIX [KALLSYMS [GUEST_KALLSYMS]]

RUNS: the guests' icount-runs.txt (SEGMENT INDEX MODE RW BS QD IOS STATUS
per marked run; several files may be given, separated by commas, with as
many plugin logs); PLUGIN_LOG: QEMU's -D file with the insn-count plugin's
"insn-count: mark N kernel K user U" lines ("mark N none": run N was not
counted: fio failed before its exec_prerun), numbered from 1 again after
each "insn-count: resync" (segment 1 after the first resync). Per mode, configuration and
repetition, the cost of one I/O is (count(LARGE) - count(SMALL)) /
(LARGE - SMALL): fio's start and end cancel out. Writes OUT_PREFIX.json
and OUT_PREFIX.md (medians over the repetitions, their spread, the ratio
to native and to the userspace controller, and the issue's targets).

With the plugin's profile=on, its "insn-count: prof N ADDRESS COUNT" lines
(kernel blocks by start address) and KALLSYMS (the test VM's
/proc/kallsyms; for the first RUNS file, the engine level) give the kernel
instructions per I/O of each function, the same difference of two sizes:
a section of OUT_PREFIX.md and "functions" in OUT_PREFIX.json.
GUEST_KALLSYMS does the same for the second RUNS file, the guest level:
the test VM's symbols there, and for each nested boot (segment S) the
nested kernel's _text and module symbols in GUEST_KALLSYMS's directory as
kallsyms-l2.S; functions are named "L1 NAME" (the test VM's kernel) or
"L2 NAME" (the nested guest's: the same kernel at its own KASLR offset),
"L1+L2 NAME" where the two share their addresses (both booted from the
vmlinux, without KASLR), "L1|L2 module text" where the two levels' module
areas overlap.  A boot whose two kernels' text ranges overlap in part is
left out of the profile.
"""
import bisect
import json
import os
import re
import statistics
import sys

MODES = ["native", "native-softirq", "native-timer", "vhost-nvme", "vhost-nvme-poll", "vhost-nvme-2w", "userspace",
         "userspace-poll"]

def load(runs_path, log_path):
    marks = {}
    profs = {}
    seg = 0
    for line in open(log_path, errors="replace"):
        if line.startswith("insn-count: resync"):
            seg += 1
            continue
        m = re.match(r"insn-count: mark (\d+) kernel (\d+) user (\d+)", line)
        if m:
            marks[(seg, int(m.group(1)))] = (int(m.group(2)), int(m.group(3)))
            continue
        m = re.match(r"insn-count: prof (\d+) ([0-9a-f]+) (\d+)(?: ([0-9a-f]+))?", line)
        if m:
            # by (block address, code address; 0 from a plugin without it)
            key = (int(m.group(2), 16), int(m.group(4) or "0", 16))
            profs.setdefault((seg, int(m.group(1))), {})[key] = int(m.group(3))
    runs = []
    for line in open(runs_path):
        f = line.split()
        if len(f) != 8:
            continue
        seg, idx, mode, rw, bs, qd, ios, st = f
        runs.append(dict(idx="%s.%s" % (seg, idx), seg=int(seg), mode=mode, rw=rw,
                         bs=int(bs), qd=int(qd), ios=int(ios), ok=st == "0",
                         count=marks.get((int(seg), int(idx))),
                         prof=profs.get((int(seg), int(idx)))))
    return runs


def kallsyms(path):
    """[(address, name, module or None)] of the text symbols of a kallsyms."""
    out = []
    for line in open(path, errors="replace"):
        f = line.split()
        if len(f) >= 3 and f[1] in "tTwW" and int(f[0], 16):
            out.append((int(f[0], 16), f[2], f[3] if len(f) > 3 else None))
    return out


class Symbols:
    """Text symbols, for the function of an address."""

    def __init__(self, syms, prefix=""):
        syms = sorted((a, prefix + n + (" " + m if m else "")) for a, n, m in syms)
        self.addrs = [a for a, _ in syms]
        self.names = [n for _, n in syms]

    def name(self, addr, haddr=0):
        i = bisect.bisect_right(self.addrs, addr) - 1
        return self.names[i] if i >= 0 else "0x%x" % addr


def spans(syms):
    """(the core kernel's text range or None, [each module's text range])"""
    core = [a for a, n, m in syms if m is None]
    mods = {}
    for a, _, m in syms:
        if m is not None:
            mods.setdefault(m, []).append(a)
    return ((min(core), max(core)) if core else None,
            [(min(v), max(v)) for v in mods.values()])


# x86-64's kernel text mapping: physical address = virtual - KMAP (+ the
# load offset, which the L1 base below includes)
KMAP = 0xffffffff80000000


def l1_base(prof_keys, core):
    """The test VM's (L1's) code address of physical address 0: the most
    common code address - (block address - KMAP) of the core kernel's
    blocks in prof_keys, (block, code address) pairs of runs where only the
    test VM's kernel ran; None without code addresses."""
    offs = {}
    for a, h in prof_keys:
        if h and core[0] <= a <= core[1]:
            offs[h - (a - KMAP)] = offs.get(h - (a - KMAP), 0) + 1
    return max(offs, key=offs.get) if offs else None


class NestedSymbols:
    """Symbols of a guest-level boot: the test VM's kernel (l1, its
    kallsyms) as "L1", the nested one's as "L2": its core is l1's core at
    the offset of its _text, its modules as it listed them (l2).  Booted
    from the same vmlinux without KASLR, the two cores share their
    addresses: a block whose code address is the test VM's kernel text
    mapping (base: l1_base()) is L1's, any other L2's; without a base
    their functions are named "L1+L2".  A module address that both levels'
    module text spans is "L1|L2 module text"."""

    def __init__(self, l1, l2, base=None):
        self.base = base
        self.delta = [a for a, n, m in l2 if n == "_text" and m is None][0] - \
            [a for a, n, m in l1 if n == "_text" and m is None][0]
        core = [(a, n, None) for a, n, m in l1 if m is None]
        self.kernel = Symbols(core)
        self.core = spans(core)[0]
        lo, hi = self.core
        if self.delta and lo <= hi + self.delta and lo + self.delta <= hi:
            raise ValueError("the two kernels' text overlaps")
        mods1 = [s for s in l1 if s[2] is not None]
        mods2 = [s for s in l2 if s[2] is not None]
        self.mspans1, self.mspans2 = spans(mods1)[1], spans(mods2)[1]
        self.mods1, self.mods2 = Symbols(mods1, "L1 "), Symbols(mods2, "L2 ")

    def name(self, addr, haddr=0):
        lo, hi = self.core[0], self.core[1] + 0x100000
        if lo <= addr <= hi:
            if self.delta:
                level = "L1"
            elif self.base is not None and haddr:
                level = "L1" if haddr - (addr - KMAP) == self.base else "L2"
            else:
                level = "L1+L2"
            return level + " " + self.kernel.name(addr)
        if self.delta and lo <= addr - self.delta <= hi:
            return "L2 " + self.kernel.name(addr - self.delta)
        in1 = any(lo <= addr <= hi + 0x1000 for lo, hi in self.mspans1)
        in2 = any(lo <= addr <= hi + 0x1000 for lo, hi in self.mspans2)
        if in1 and in2:
            return "L1|L2 module text"
        if in1:
            return self.mods1.name(addr)
        if in2:
            return self.mods2.name(addr)
        return "0x%x" % addr


def nested_symbols(l1, l2_path, base):
    """NestedSymbols of l1 and the file l2_path, or None if it is missing
    or incomplete, or the two kernels' text ranges overlap."""
    if not os.path.exists(l2_path):
        return None
    try:
        return NestedSymbols(l1, kallsyms(l2_path), base)
    except (IndexError, ValueError):
        return None


def pairs(runs, field):
    """(key, small run, large run, I/Os between them) for each repetition:
    a run with FIELD, then a larger one of the same configuration."""
    pending = {}
    for r in runs:
        key = (r["mode"], r["rw"], r["bs"], r["qd"])
        if not r["ok"] or r[field] is None:
            pending.pop(key, None)
        elif key in pending and pending[key]["ios"] < r["ios"]:
            a = pending.pop(key)
            yield key, a, r, r["ios"] - a["ios"]
        else:
            pending[key] = r


def functions(runs, syms_of):
    """{(mode, rw, bs, qd): {function: kernel instructions per I/O}}, the
    median over the repetitions of (LARGE - SMALL) / (IOs difference);
    syms_of(segment): the Symbols of a segment's runs, or None to leave
    them out."""
    def by_fn(prof, syms):
        out = {}
        for (addr, haddr), n in prof.items():
            fn = syms.name(addr, haddr)
            out[fn] = out.get(fn, 0) + n
        return out
    reps = {}
    for key, a, b, dn in pairs(runs, "prof"):
        syms = syms_of(a["seg"])
        if syms is None or b["seg"] != a["seg"]:
            continue
        fa, fb = by_fn(a["prof"], syms), by_fn(b["prof"], syms)
        reps.setdefault(key, []).append(
            {fn: (fb.get(fn, 0) - fa.get(fn, 0)) / dn for fn in set(fa) | set(fb)})
    out = {}
    for key, lst in reps.items():
        fns = set().union(*lst)
        out[key] = {fn: statistics.median(d.get(fn, 0) for d in lst) for fn in fns}
    return out


def per_io(runs):
    """{(mode, rw, bs, qd): [(total, kernel, user) per I/O, one per rep]}"""
    out = {}
    for key, a, b, dn in pairs(runs, "count"):
        dk = (b["count"][0] - a["count"][0]) / dn
        du = (b["count"][1] - a["count"][1]) / dn
        out.setdefault(key, []).append((dk + du, dk, du))
    return out


def main():
    runs_paths, log_paths, prefix = sys.argv[1:4]
    runs = []
    fns = {}
    for i, (rp, lp) in enumerate(zip(runs_paths.split(","), log_paths.split(","))):
        level = load(rp, lp)
        runs += level
        if not any(r["prof"] for r in level) or len(sys.argv) <= 4 + i:
            continue
        if i == 0:
            engine = Symbols(kallsyms(sys.argv[4]))
            fns.update(functions(level, lambda seg: engine))
        elif i == 1 and os.path.exists(sys.argv[5]):
            l1 = kallsyms(sys.argv[5])
            # Segment 1: fio in the test VM itself; later ones a nested boot each.
            tabs = {1: Symbols(l1, "L1 ")}
            base = l1_base([k for r in level if r["seg"] == 1 and r["prof"]
                            for k in r["prof"]],
                           spans([s for s in l1 if s[2] is None])[0])
            for seg in {r["seg"] for r in level} - {1}:
                tabs[seg] = nested_symbols(l1, os.path.join(
                    os.path.dirname(sys.argv[5]), "kallsyms-l2.%d" % seg), base)
                if tabs[seg] is None:
                    print("icount-report: nested boot %d left out of the profile "
                          "(no symbols, or its kernel's text overlaps the test VM's)" % seg,
                          file=sys.stderr)
            fns.update(functions(level, tabs.get))
    missing = [r["idx"] for r in runs if r["count"] is None]
    res = per_io(runs)
    rows = []
    for (mode, rw, bs, qd), reps in sorted(res.items(),
                                           key=lambda kv: (kv[0][1], kv[0][2], kv[0][3], kv[0][0])):
        tot = [t for t, _, _ in reps]
        med = statistics.median(tot)
        rows.append(dict(mode=mode, rw=rw, bs=bs, qd=qd, reps=len(reps),
                         insn_per_io=med, min=min(tot), max=max(tot),
                         spread=(max(tot) - min(tot)) / med if med else 0,
                         kernel=statistics.median(k for _, k, _ in reps),
                         user=statistics.median(u for _, _, u in reps),
                         insn_per_byte=med / bs))
    by = {(r["mode"], r["rw"], r["bs"], r["qd"]): r for r in rows}
    for r in rows:
        guest = r["mode"].startswith("guest-") or r["mode"] == "native-1vcpu"
        nat = by.get(("native-1vcpu" if guest else "native", r["rw"], r["bs"], r["qd"]))
        us = by.get(("userspace", r["rw"], r["bs"], r["qd"]))
        r["vs_native"] = r["insn_per_io"] / nat["insn_per_io"] if nat else None
        r["vs_userspace"] = r["insn_per_io"] / us["insn_per_io"] if us else None
    json.dump(dict(rows=rows, unmarked_runs=missing,
                   functions=[dict(mode=k[0], rw=k[1], bs=k[2], qd=k[3],
                                   per_io={fn: round(v, 1) for fn, v in d.items() if abs(v) >= 1})
                              for k, d in sorted(fns.items())]),
              open(prefix + ".json", "w"), indent=1)

    md = ["# Instructions per I/O (`make bench-icount`)", "",
          "Every instruction the test VM executed (guest kernel and user space, "
          "all vCPUs) per I/O, counted by a TCG plugin between markers around "
          "fio runs of a fixed number of I/Os; the difference of two sizes "
          "cancels fio's start and end. Median over the repetitions; spread = "
          "(max - min) / median.", "",
          "× native: to fio's io_uring on the backend in the same test VM "
          "(engine level: `native`; guest level: `native-1vcpu`).", "",
          "| config | mode | insns/I/O | kernel | user | spread | × native | × userspace |",
          "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        cfg = "%s %s QD%d" % (r["rw"], "4K" if r["bs"] == 4096 else "%dK" % (r["bs"] // 1024), r["qd"])
        f = lambda x: "—" if x is None else "%.2f" % x
        md.append("| %s | %s | %.0f | %.0f | %.0f | %.1f%% | %s | %s |" % (
            cfg, r["mode"], r["insn_per_io"], r["kernel"], r["user"],
            100 * r["spread"], f(r["vs_native"]), f(r["vs_userspace"])))
    md += ["", "Targets (issue 15): the module (vhost-nvme) ≤ 1.3× native at QD1 "
           "and ≤ 1.1× at QD ≥ 16; ≤ 0.5× the userspace controller at every QD; "
           "polling ≤ notification at QD ≥ 16.", ""]
    for r in rows:
        if r["mode"] != "vhost-nvme" or r["rw"] != "randread":
            continue
        lim = 1.3 if r["qd"] == 1 else 1.1
        if r["vs_native"] is not None:
            md.append("- randread QD%d: %.2f× native (target ≤ %.1f×): %s" % (
                r["qd"], r["vs_native"], lim, "met" if r["vs_native"] <= lim else "missed"))
        if r["vs_userspace"] is not None:
            md.append("- randread QD%d: %.2f× userspace (target ≤ 0.5×): %s" % (
                r["qd"], r["vs_userspace"], "met" if r["vs_userspace"] <= 0.5 else "missed"))
        poll = by.get(("vhost-nvme-poll", r["rw"], r["bs"], r["qd"]))
        if poll:
            extra = poll["insn_per_io"] - r["insn_per_io"]
            md.append("- randread QD%d: polling costs %+.0f instructions per I/O%s" % (
                r["qd"], extra, "" if r["qd"] < 16 else
                (" (target ≤ 0 at QD ≥ 16: %s)" % ("met" if extra <= 0 else "missed"))))
    for r in rows:
        if r["mode"] != "guest-vhost-nvme":
            continue
        for other in ("guest-nvme", "guest-virtio-blk", "guest-virtio-blk-iothread"):
            o = by.get((other, r["rw"], r["bs"], r["qd"]))
            if o:
                x = r["insn_per_io"] / o["insn_per_io"]
                md.append("- guest level, %s %dK QD%d: vhost-nvme %.2f× %s (target ≤ 0.25×): %s" % (
                    r["rw"], r["bs"] // 1024, r["qd"], x, other[6:],
                    "met" if x <= 0.25 else "missed"))
    if fns:
        md += ["", "## Where the kernel's instructions go", "",
               "Kernel instructions per I/O by function (the plugin's profile=on: "
               "blocks by start address, functions from the test VM's /proc/kallsyms), "
               "the 12 largest of each mode; \"rest\": all other functions. "
               "Guest level: \"L1\" the test VM's kernel (KVM, the nested QEMU's "
               "system calls, the module, the backend), \"L2\" the nested guest's "
               "(its driver, block layer and fio's system calls), \"L1+L2\" the "
               "kernel's own functions where both levels run them at the same "
               "addresses (no KASLR), \"L1|L2 module text\" where their modules' "
               "areas overlap.", ""]
        for key in sorted(fns, key=lambda k: (k[1], k[2], k[3], MODES.index(k[0])
                                              if k[0] in MODES else 99, k[0])):
            mode, rw, bs, qd = key
            d = fns[key]
            top = sorted(d.items(), key=lambda kv: -kv[1])[:12]
            rest = sum(d.values()) - sum(v for _, v in top)
            md.append("- %s %s QD%d, `%s`: %s; rest %.0f" % (
                rw, "4K" if bs == 4096 else "%dK" % (bs // 1024), qd, mode,
                ", ".join("%s %.0f" % (fn.replace(" [", " ["), v) for fn, v in top), rest))
    if missing:
        md += ["", "Runs without a count (plugin not loaded, or a marker lost): %s"
               % " ".join(map(str, missing))]
    open(prefix + ".md", "w").write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0 if rows and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
