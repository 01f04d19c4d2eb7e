#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The kernels of one decode step, from an ncu CSV of `quire-bench --profile-range` (two steps).

Each kernel ran alone under ncu (caches flushed, clocks at base), so the durations are what a
kernel costs without its neighbours, and larger than inside the step's CUDA graph. Rows are grouped
by kernel and launch shape, largest total first.
  python3 tools/bench/ncu_step_table.py ncu.csv [--steps 2]
"""
import argparse
import collections
import csv
import re


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--steps", type=int, default=2, help="decode steps in the profiled range")
    a = ap.parse_args()
    header, rows = None, []
    with open(a.csv, newline="") as f:
        for r in csv.reader(f):
            if r and r[0] == "ID":
                header = r
            elif header and len(r) == len(header):
                rows.append(dict(zip(header, r)))
    rows = [r for r in rows if r["Metric Name"] == "gpu__time_duration.sum"]
    if not rows:
        raise SystemExit("no gpu__time_duration.sum rows in " + a.csv)
    groups = collections.OrderedDict()
    total = 0.0
    for r in rows:
        name = re.sub(r"\(.*", "", r["Kernel Name"]).replace("(anonymous namespace)::", "").replace("unnamed>::", "")
        key = f"{name.strip()} grid {r['Grid Size']} block {r['Block Size']}"
        us = float(r["Metric Value"].replace(",", "")) / 1000.0
        g = groups.setdefault(key, [0, 0.0])
        g[0] += 1
        g[1] += us
        total += us
    print(f"| kernel (grid, block) | per step | µs each | µs a step |")
    print("|---|---|---|---|")
    for key, (n, us) in sorted(groups.items(), key=lambda kv: -kv[1][1]):
        print(f"| {key} | {n / a.steps:g} | {us / n:.2f} | {us / a.steps:.1f} |")
    print(f"| all | {len(rows) / a.steps:g} | | {total / a.steps:.1f} |")


if __name__ == "__main__":
    main()
