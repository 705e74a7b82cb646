#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# Classify a frozen test VM from the monitor dumps vm-run.sh takes
# (.vmrun/frozen.txt: "info registers -a" and "info lapic" of each vCPU,
# one block per wake-up attempt, the blocks at least a minute apart).
#
# Prints one line and exits 0:
#   emulator: ...  a vCPU stayed halted, with interrupts enabled (IF=1, no
#                  interrupt shadow), while its local APIC held a vector
#                  above its processor priority, in two dumps in a row and
#                  through the wake-ups between them.  A correct CPU takes
#                  such an interrupt; nothing the guest runs (the module
#                  included) can keep it halted, so the freeze is the
#                  emulator's (tools/testing/e2e/README.md: TCG's SVM).
#   unknown: ...   anything else: a vCPU that runs, or halts with IF=0 or
#                  with nothing deliverable (a guest that waits for an
#                  interrupt nobody sends, e.g. one a device lost).
#
# Usage: freeze-class.py FROZEN.TXT
import re
import sys


def parse(text):
    """Return the dumps: a list of {cpu: {"halt", "if", "shadow", "irr", "ppr"}}."""
    dumps = []
    for block in re.split(r"=== after [^\n]*", text)[1:]:
        cpus = {}
        cur = None
        for m in re.finditer(r"^CPU#(\d+)\s*$|^RIP=\S+ RFL=([0-9a-f]+) .*?II=(\d) .*?HLT=(\d)",
                             block, flags=re.M):
            if m.group(1) is not None:
                cur = int(m.group(1))
            elif cur is not None:
                cpus[cur] = {"halt": m.group(4) == "1",
                             "if": bool(int(m.group(2), 16) & 0x200),
                             "shadow": m.group(3) == "1", "irr": [], "ppr": None}
        for m in re.finditer(r"dumping local APIC state for CPU (\d+)(.*?)PPR (0x[0-9a-f]+)",
                             block, flags=re.S):
            cpu = int(m.group(1))
            irr = re.search(r"^IRR\s+(.*)$", m.group(2), flags=re.M)
            if cpu in cpus and irr:
                cpus[cpu]["irr"] = [int(v) for v in re.findall(r"\d+", irr.group(1))]
                cpus[cpu]["ppr"] = int(m.group(3), 16)
        dumps.append(cpus)
    return dumps


def stuck(st):
    """The deliverable vectors of a halted vCPU with interrupts enabled."""
    if not st["halt"] or not st["if"] or st["shadow"] or st["ppr"] is None:
        return []
    return [v for v in st["irr"] if v >> 4 > st["ppr"] >> 4]


def classify(text):
    dumps = parse(text)
    if len(dumps) < 2:
        return "unknown: %d dump(s) of the frozen VM, 2 needed" % len(dumps)
    a, b = dumps[-2], dumps[-1]
    for cpu in sorted(b):
        if cpu not in a:
            continue
        both = sorted(set(stuck(a[cpu])) & set(stuck(b[cpu])))
        if both:
            return ("emulator: vCPU %d halted with IF=1 and vector(s) %s pending above "
                    "PPR 0x%02x in two dumps, through a wake-up"
                    % (cpu, ",".join(map(str, both)), b[cpu]["ppr"]))
    if not b:
        return "unknown: no vCPU state in the last dump"
    desc = []
    for cpu in sorted(b):
        st = b[cpu]
        desc.append("vCPU %d %s IF=%d IRR %s PPR %s" % (
            cpu, "halted" if st["halt"] else "running", st["if"],
            ",".join(map(str, st["irr"])) or "none",
            "?" if st["ppr"] is None else "0x%02x" % st["ppr"]))
    return "unknown: " + "; ".join(desc)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: freeze-class.py FROZEN.TXT")
    with open(sys.argv[1], errors="replace") as f:
        print(classify(f.read()))
