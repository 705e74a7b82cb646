#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Summaries of `make bench`'s fio runs.

  report.py --one FILE.json [FILE.json ...]
      one line per fio run (guest side, for the progress lines; one call
      for several runs: a python3 start costs about a second under TCG)
  report.py --split ALL.json --prefix P --suffix S --modes M [M ...]
      one fio output holding a job per mode (stonewalled, group
      reporting): each mode's job into its own file P + MODE + S, as if
      run alone, and its line; a mode without a job, or whose job failed,
      gets P + MODE + S + ".failed" and a FAILED line (exit status 1)
  report.py --raw DIR --json OUT.json --md OUT.md --gp OUT.gp --png OUT.png
            [--env FILE] [--notes FILE] [--meta KEY=VALUE ...]
      medians over the repetitions: a list of records in OUT.json, a
      markdown report with every figure's ratio to native in OUT.md, and a
      gnuplot script in OUT.gp that draws OUT.png
"""
import argparse
import json
import os
import re
import statistics
import sys

ENGINE_MODES = ["native", "native-softirq", "native-timer", "vhost-nvme", "vhost-nvme-poll", "vhost-nvme-2w", "userspace",
                "userspace-poll"]
# Measured in the second, one-vCPU test VM; compared with its own native.
GUEST_MODES = ["native-1vcpu", "guest-vhost-nvme", "guest-nvme", "guest-virtio-blk"]
MODE_ORDER = ENGINE_MODES + GUEST_MODES
NAME_RE = re.compile(r"^(?P<rep>\d+)-(?P<mode>.+)-(?P<rw>randread|read|randwrite|write)"
                     r"-qd(?P<qd>\d+)-bs(?P<bs>\d+)\.json$")


def load_fio(path):
    """The aggregated job of a fio JSON output (warnings may precede it)."""
    with open(path) as f:
        s = f.read()
    # fio may print warnings before the JSON and errors after it.
    j, _ = json.JSONDecoder().raw_decode(s[s.index("{"):])
    job = j["jobs"][0]
    if job.get("error"):
        raise ValueError("fio job error %d" % job["error"])
    return j, job


def summarize(job, rw):
    d = job["write" if "write" in rw else "read"]
    lat = d.get("lat_ns", {}).get("percentile") or d.get("clat_ns", {}).get("percentile", {})
    return {
        "iops": d["iops"],
        "bw_mib_s": d["bw"] / 1024.0,
        "p50_us": lat.get("50.000000", 0) / 1000.0,
        "p99_us": lat.get("99.000000", 0) / 1000.0,
    }


def fmt_iops(v):
    if v >= 1e6:
        return "%.2fM" % (v / 1e6)
    if v >= 1e4:
        return "%.0fK" % (v / 1e3)
    if v >= 1e3:
        return "%.1fK" % (v / 1e3)
    return "%.0f" % v


def fmt_bs(v):
    return "%dK" % (v // 1024) if v % 1024 == 0 else "%dB" % v


def fmt_us(v):
    return "%.0f" % v if v >= 100 else "%.1f" % v


def one(path):
    m = NAME_RE.match(os.path.basename(path))
    _, job = load_fio(path)
    rw = m.group("rw") if m else job["job options"].get("rw", "randread")
    s = summarize(job, rw)
    label = ("%s %s bs=%s qd=%s" % (m.group("mode"), rw, m.group("bs"), m.group("qd"))
             if m else os.path.basename(path))
    print("%s: %s IOPS, %.1f MiB/s, p50 %s us, p99 %s us"
          % (label, fmt_iops(s["iops"]), s["bw_mib_s"], fmt_us(s["p50_us"]), fmt_us(s["p99_us"])))


def split(path, prefix, suffix, modes):
    """--split: returns how many of @modes have no usable job."""
    why = "no job in the fio output"
    try:
        with open(path) as f:
            text = f.read()
        j, _ = json.JSONDecoder().raw_decode(text[text.index("{"):])
        jobs = {job["jobname"]: job for job in j["jobs"]}
    except (OSError, ValueError, KeyError) as e:
        j, jobs = {}, {}
        why = "no fio output (%s)" % e
    bad = 0
    for mode in modes:
        out = prefix + mode + suffix
        job = jobs.get(mode)
        ok = job is not None and not job.get("error")
        one_j = {k: v for k, v in j.items() if k != "jobs"}
        one_j["jobs"] = [job] if job else []
        if not ok:
            bad += 1
            out += ".failed"
        with open(out, "w") as f:
            json.dump(one_j, f, indent=1)
        if ok:
            one(out)
        else:
            print("FAILED: %s: %s" % (os.path.basename(out),
                                      "fio job error %d" % job["error"] if job else why))
    return bad


def aggregate(raw):
    runs = {}
    failed = []
    for name in sorted(os.listdir(raw)):
        m = NAME_RE.match(name)
        if not m:
            if name.endswith(".failed"):
                failed.append(name[:-len(".json.failed")])
            continue
        try:
            _, job = load_fio(os.path.join(raw, name))
        except (ValueError, KeyError, json.JSONDecodeError) as e:
            print("report: skipping %s: %s" % (name, e), file=sys.stderr)
            failed.append(name[:-5])
            continue
        key = (m.group("mode"), m.group("rw"), int(m.group("bs")), int(m.group("qd")))
        jobs = int(job["job options"].get("numjobs", 1)) if "job options" in job else 1
        s = summarize(job, m.group("rw"))
        s["jobs"] = jobs
        runs.setdefault(key, []).append(s)
    records = []
    for (mode, rw, bs, qd), rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("iops", "bw_mib_s", "p50_us", "p99_us")}
        iops = [r["iops"] for r in rs]
        bw = [r["bw_mib_s"] for r in rs]
        records.append({
            "mode": mode, "rw": rw, "bs": bs, "qd": qd, "jobs": rs[0]["jobs"],
            "iops": round(med["iops"], 1), "bw_mib_s": round(med["bw_mib_s"], 2),
            "p50_us": round(med["p50_us"], 2), "p99_us": round(med["p99_us"], 2),
            "reps": len(rs), "iops_runs": [round(v, 1) for v in iops],
            "bw_runs": [round(v, 2) for v in bw],
            "iops_spread_pct": round(100.0 * (max(iops) - min(iops)) / med["iops"], 1) if med["iops"] else 0,
        })
    order = {m: i for i, m in enumerate(MODE_ORDER)}
    records.sort(key=lambda r: (r["rw"] != "randread", r["bs"], r["qd"], order.get(r["mode"], 99), r["mode"]))
    return records, failed


def ratio(v, base):
    return "%.2f×" % (v / base) if base else "–"


def spread(runs, fmt):
    """The runs' range, " [min–max]", when there are several."""
    if not runs or len(runs) < 2:
        return ""
    return " [%s–%s]" % (fmt(min(runs)), fmt(max(runs)))


def tables(out, by, modes, qds, seq, ref):
    """IOPS/bandwidth and latency tables of MODES, ratios to mode REF;
    each median with the range of its runs."""
    hdr = ["mode"] + ["QD%d" % q for q in qds] + ["128K seq QD%d MiB/s" % q for _, q in seq]
    out.append("| " + " | ".join(hdr) + " |")
    out.append("|" + "---|" * len(hdr))
    for m in modes:
        row = [("`%s`" % m) + (" ²" if m == "vhost-nvme-2w" else "")]
        for q in qds:
            r, n = by.get((m, "randread", 4096, q)), by.get((ref, "randread", 4096, q))
            row.append("%s (%s)%s" % (fmt_iops(r["iops"]), ratio(r["iops"], n["iops"] if n else 0),
                                      spread(r.get("iops_runs"), fmt_iops)) if r else "–")
        for bs, q in seq:
            r, n = by.get((m, "read", bs, q)), by.get((ref, "read", bs, q))
            row.append("%.0f (%s)%s" % (r["bw_mib_s"], ratio(r["bw_mib_s"], n["bw_mib_s"] if n else 0),
                                        spread(r.get("bw_runs"), lambda v: "%.0f" % v)) if r else "–")
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    out.append("4K random read latency, p50 / p99 in µs (fio's total latency, submission included; "
               "ratio to `%s` in brackets):" % ref)
    out.append("")
    hdr = ["mode"] + ["QD%d" % q for q in qds]
    out.append("| " + " | ".join(hdr) + " |")
    out.append("|" + "---|" * len(hdr))
    for m in modes:
        row = ["`%s`" % m]
        for q in qds:
            r, n = by.get((m, "randread", 4096, q)), by.get((ref, "randread", 4096, q))
            if not r:
                row.append("–")
                continue
            row.append("%s / %s (%s / %s)" % (fmt_us(r["p50_us"]), fmt_us(r["p99_us"]),
                                               ratio(r["p50_us"], n["p50_us"] if n else 0),
                                               ratio(r["p99_us"], n["p99_us"] if n else 0)))
        out.append("| " + " | ".join(row) + " |")
    out.append("")


def markdown(records, env, notes, meta, failed):
    by = {(r["mode"], r["rw"], r["bs"], r["qd"]): r for r in records}
    present = [m for m in MODE_ORDER if any(r["mode"] == m for r in records)]
    present += sorted({r["mode"] for r in records} - set(present))
    emodes = [m for m in present if m not in GUEST_MODES]
    gmodes = [m for m in present if m in GUEST_MODES]
    qds = sorted({r["qd"] for r in records if r["rw"] == "randread" and r["bs"] == 4096})
    seq = sorted({(r["bs"], r["qd"]) for r in records if r["rw"] == "read"})
    out = []
    if emodes:
        out.append("Engine level: 4K random read IOPS (median of %s runs; ratio to `native` in brackets)%s:"
                   % (meta.get("reps", "?"),
                      ", and 128K sequential read bandwidth" if seq else ""))
        out.append("")
        tables(out, by, emodes, qds, seq, "native")
        if "vhost-nvme-2w" in emodes:
            out.append("² `vhost-nvme-2w`: one device with two queue pairs and a worker each, the "
                       "I/Os spread round robin, at the QD shown in all, as every other row.")
            out.append("")
    if gmodes:
        out.append("Guest level: fio in a nested Linux guest under KVM (test VM with one vCPU); "
                   "4K random read IOPS (median of %s runs; ratio to `native-1vcpu`, fio on the "
                   "backend in that test VM, in brackets)%s:"
                   % (meta.get("reps", "?"), ", and 128K sequential read bandwidth" if seq else ""))
        out.append("")
        tables(out, by, gmodes, qds, seq, "native-1vcpu")

    # The engine-level targets, reported, not asserted.
    def iops(m, q):
        r = by.get((m, "randread", 4096, q))
        return r["iops"] if r else None

    def at_least(a, b, q, k=1.0):
        """Verdict on "a >= k * b" (4K random read IOPS) at QD q, by the
        medians; a met or a miss that the runs' ranges could turn the other
        way is labelled within the noise, with the range of the ratio."""
        ra, rb = by[(a, "randread", 4096, q)], by[(b, "randread", 4096, q)]
        x = ra["iops"] / rb["iops"]
        met = x >= k
        verdict = "%s (%.2f×)" % ("met" if met else "missed", x)
        aa = ra.get("iops_runs") or [ra["iops"]]
        bb = rb.get("iops_runs") or [rb["iops"]]
        lo, hi = min(aa) / max(bb), max(aa) / min(bb)
        if (lo < k) if met else (hi >= k):
            verdict += (", within the noise: the runs give %.2f–%.2f× (%s–%s vs %s–%s)"
                        % (lo, hi, fmt_iops(min(aa)), fmt_iops(max(aa)),
                           fmt_iops(min(bb)), fmt_iops(max(bb))))
        return verdict
    tl = []
    for q in qds:
        v, n = iops("vhost-nvme", q), iops("native", q)
        if v and n:
            want = 0.90 if q == 1 else 0.95 if q >= 16 else None
            if want:
                tl.append("vhost-nvme ≥ %.2f× native at QD%d: %s"
                          % (want, q, at_least("vhost-nvme", "native", q, want)))
    for q in qds:
        v, u = iops("vhost-nvme", q), iops("userspace", q)
        if v and u:
            tl.append("vhost-nvme ≥ 2× userspace at QD%d: %s"
                      % (q, at_least("vhost-nvme", "userspace", q, 2.0)))
    for q in qds:
        p, v = iops("vhost-nvme-poll", q), iops("vhost-nvme", q)
        if p and v:
            tl.append("polling ≥ notification at QD%d: %s"
                      % (q, at_least("vhost-nvme-poll", "vhost-nvme", q)))
    for q in qds:
        w, v = iops("vhost-nvme-2w", q), iops("vhost-nvme", q)
        if w and v:
            tl.append("2 workers vs 1 at QD%d: %.2f×" % (q, w / v))
    if tl:
        out.append("Engine-level targets of issue 4 (TCG figures: indicative only):")
        out.append("")
        out += ["- " + t for t in tl]
        out.append("")
    tl = []
    for q in qds:
        v = iops("guest-vhost-nvme", q)
        for base in ("guest-nvme", "guest-virtio-blk"):
            b = iops(base, q)
            if v and b:
                tl.append("guest-vhost-nvme ≥ %s at QD%d: %s"
                          % (base, q, at_least("guest-vhost-nvme", base, q)))
    if tl:
        out.append("Guest-level targets of issue 4 (nested KVM inside TCG: indicative only):")
        out.append("")
        out += ["- " + t for t in tl]
        out.append("")
    if notes:
        out.append("Notes:")
        out.append("")
        out += ["- " + n for n in notes]
        out.append("")
    if failed:
        out.append("Failed runs (not in the medians): " + ", ".join(sorted(failed)))
        out.append("")
    want = int(meta["reps"]) if meta.get("reps", "").isdigit() else 0
    short = ["`%s` %s %s QD%d: %d of %d" % (r["mode"], r["rw"], fmt_bs(r["bs"]), r["qd"], r["reps"], want)
             for r in records if r["reps"] < want]
    if short:
        out.append("Fewer runs than asked (medians of those there are): " + ", ".join(short))
        out.append("")
    info = []
    for k in ("date", "host", "host_cpu", "host_kernel", "host_other_cpu", "accel", "vm", "runtime", "commit"):
        if k in meta:
            info.append("%s: %s" % (k, meta[k]))
    for k in ("guest_kernel", "guest_cpus", "fio"):
        if k in env:
            info.append("%s: %s" % (k, env[k]))
    params = ["%s=%s" % (k, v) for k, v in env.items() if k.startswith(("vhost_nvme.", "null_blk."))]
    if params:
        info.append("parameters: " + " ".join(params))
    out.append("Setup: " + "; ".join(info) + ".")
    return "\n".join(out) + "\n"


def gnuplot(records, dat, gp, png, title):
    modes = [m for m in MODE_ORDER if any(r["mode"] == m for r in records)]
    modes += sorted({r["mode"] for r in records} - set(modes))
    qds = sorted({r["qd"] for r in records if r["rw"] == "randread" and r["bs"] == 4096})
    by = {(r["mode"], r["rw"], r["bs"], r["qd"]): r for r in records}
    with open(dat, "w") as f:
        f.write("# qd " + " ".join("%s_iops %s_p50 %s_p99" % (m, m, m) for m in modes) + "\n")
        for q in qds:
            cols = [str(q)]
            for m in modes:
                r = by.get((m, "randread", 4096, q))
                cols += ["%.1f %.2f %.2f" % (r["iops"], r["p50_us"], r["p99_us"])] if r else ["NaN NaN NaN"]
            f.write(" ".join(cols) + "\n")
    lines = [
        "set terminal pngcairo size 1200,500 font 'sans,10'",
        "set output '%s'" % png,
        "set multiplot layout 1,2 title '%s'" % title.replace("'", ""),
        "set logscale x 2",
        "set xtics (%s)" % ", ".join("'%d' %d" % (q, q) for q in qds),
        "set xrange [%g:%g]" % (min(qds) / 1.5, max(qds) * 1.5),
        "set xlabel 'queue depth'",
        "set grid",
        "set key top left",
        "set logscale y 10",
        "set ylabel '4K random read IOPS'",
        "plot " + ", ".join("'%s' using 1:%d with linespoints lw 2 title '%s'" % (dat, 2 + 3 * i, m)
                            for i, m in enumerate(modes)),
        "set ylabel 'latency (us): p50 solid, p99 dashed'",
        "plot " + ", ".join(
            "'%s' using 1:%d with linespoints lw 2 lc %d title '%s', '%s' using 1:%d with lines dt 2 lc %d notitle"
            % (dat, 3 + 3 * i, i + 1, m, dat, 4 + 3 * i, i + 1) for i, m in enumerate(modes)),
        "unset multiplot",
    ]
    with open(gp, "w") as f:
        f.write("\n".join(lines) + "\n")


def read_kv(path):
    kv = {}
    if path and os.path.exists(path):
        for line in open(path):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                kv[k] = v
    return kv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", nargs="+")
    ap.add_argument("--split")
    ap.add_argument("--prefix")
    ap.add_argument("--suffix")
    ap.add_argument("--modes", nargs="+")
    ap.add_argument("--raw")
    ap.add_argument("--json")
    ap.add_argument("--md")
    ap.add_argument("--gp")
    ap.add_argument("--png")
    ap.add_argument("--env")
    ap.add_argument("--notes")
    ap.add_argument("--meta", action="append", default=[])
    a = ap.parse_args()
    if a.one:
        for path in a.one:
            try:
                one(path)
            except (OSError, ValueError, KeyError) as e:
                print("%s: unreadable (%s)" % (os.path.basename(path), e))
        return 0
    if a.split:
        return 1 if split(a.split, a.prefix, a.suffix, a.modes) else 0
    records, failed = aggregate(a.raw)
    meta = dict(kv.split("=", 1) for kv in a.meta)
    env = read_kv(a.env)
    notes = []
    if a.notes and os.path.exists(a.notes):
        notes = [n.strip() for n in open(a.notes) if n.strip()]
    with open(a.json, "w") as f:
        json.dump(records, f, indent=1)
        f.write("\n")
    with open(a.md, "w") as f:
        f.write(markdown(records, env, notes, meta, failed))
    if a.gp:
        gnuplot(records, os.path.splitext(a.gp)[0] + ".dat", a.gp, a.png,
                "vhost-nvme bench, %s, %s" % (meta.get("date", ""), meta.get("accel", "")))
    return 0 if records else 1


if __name__ == "__main__":
    sys.exit(main())
