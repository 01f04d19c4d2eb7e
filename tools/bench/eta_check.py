#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks the reading ETA that `quire ask` shows (app/session/read_eta.*) against the real time: reads
libraries of about 128K and 1M tokens with the real 9B configuration (random weights) on the GPU,
timestamps every progress line, and reports, from 10 % progress on, the largest error of the shown
ETA against the time the reading really still took (over the lines with at least 1 s left — the ETA
is shown in tenths of a second under 10 s, so its rounding stays under 5 % there — and with 5 s). Each read's per-chunk timings
(tokens done, seconds since the first line, ETA shown) go to WORK/chunks-N.csv, the data
tests/test_read_eta.cpp replays. A fresh data folder per length, so the ETA
starts from the model the app ships with (the cost is learned only after a first long read).

    python3 tools/bench/eta_check.py --quire build/app/quire --tokenizer-from build/tiny-models/tiny-a --work /tmp/eta
"""

import argparse
import os
import re
import shutil
import subprocess
import time

from replay_1m_session import make_model, make_text

LINE = re.compile(r"reading: (\d+) / (\d+) tokens .*ETA (?:(\d+) min )?(\d+(?:\.\d)?) s")


def read_with_eta(quire, model, work, tokens, chunk, env):
    data = os.path.join(work, f"data-{tokens}")
    shutil.rmtree(data, ignore_errors=True)
    text = os.path.join(work, f"book-{tokens}.txt")
    make_text(text, int(tokens * 1.85))
    common = ["--data-dir", data]
    for cmd in (["library", "create", "book"], ["config", "model", model], ["add", "book", text]):
        subprocess.run([quire] + cmd + common, check=True, env=env, capture_output=True)
    p = subprocess.Popen([quire, "ask", "book", "Hello?", "--backend", "cuda", "--no-think", "--max-tokens", "1", "--chunk", str(chunk)] + common,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    points, buf = [], b""
    while True:
        chunk_bytes = p.stderr.read1(4096)
        if not chunk_bytes:
            break
        now = time.monotonic()
        buf += chunk_bytes
        *lines, buf = re.split(rb"[\r\n]", buf)
        for line in lines:
            m = LINE.search(line.decode(errors="replace"))
            if m:
                done, total = int(m.group(1)), int(m.group(2))
                eta = int(m.group(3) or 0) * 60 + float(m.group(4))
                points.append((now, done, total, eta))
    p.wait()
    if p.returncode != 0 or not points:
        raise SystemExit(f"reading {tokens} tokens failed ({p.returncode})")
    end = next(t for t, d, n, _ in points if d == n)  # the reading's last progress line
    with open(os.path.join(work, f"chunks-{tokens}.csv"), "w") as f:
        f.write("done,total,seconds_since_first_line,eta_shown_s\n")
        for t, d, n, eta in points:
            f.write(f"{d},{n},{t - points[0][0]:.3f},{eta}\n")
    rows = []
    for t, d, n, eta in points:
        if d < n and d >= n / 10:
            real = end - t
            rows.append((d / n, eta, real))
    return points[-1][2], end - points[0][0], rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quire", required=True)
    ap.add_argument("--tokenizer-from", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--lengths", default="131072,1000000")
    ap.add_argument("--chunk", type=int, default=8192)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    model = make_model(a.work, a.tokenizer_from)
    print("| library tokens | reading s | ETA shown / really left at 10 %, 25 %, 50 %, 75 %, 90 % (s) | worst error from 10 % on, while ≥ 1 s is left | worst error from 10 % on, while ≥ 5 s are left |")
    print("|---|---|---|---|---|")
    worst_all = 0.0
    for n in [int(x) for x in a.lengths.split(",")]:
        total, seconds, rows = read_with_eta(os.path.abspath(a.quire), model, a.work, n, a.chunk, env)
        samples = []
        for q in (0.10, 0.25, 0.50, 0.75, 0.90):
            r = min(rows, key=lambda x: abs(x[0] - q))
            samples.append(f"{r[1]:g} / {r[2]:.1f}")
        def worst_of(rs):
            rs = [r for r in rs if r[2] > 0]
            if not rs:
                return None, "(no line with time left)"
            w = max(rs, key=lambda r: abs(r[1] - r[2]) / r[2])
            e = abs(w[1] - w[2]) / w[2]
            return e, f"{e * 100:.0f} % (at {w[0] * 100:.0f} %: {w[1]:g} s shown, {w[2]:.1f} s left)"
        e_all, err_all = worst_of([r for r in rows if r[2] >= 1.0])
        _, err_long = worst_of([r for r in rows if r[2] >= 5.0])
        if e_all is not None:
            worst_all = max(worst_all, e_all)
        print(f"| {total:,} | {seconds:.1f} | {', '.join(samples)} | {err_all} | {err_long} |", flush=True)
    print(f"worst error from 10 % on, all lengths: {worst_all * 100:.0f} % (while ≥ 1 s is left; the issue asks ≤ 20 %)")


if __name__ == "__main__":
    main()
