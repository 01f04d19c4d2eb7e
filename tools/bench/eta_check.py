#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks the reading ETA that `quire ask` shows (app/session/read_eta.*) against the real time: reads
libraries of about 128K and 1M tokens with the real 9B configuration (random weights) on the GPU,
timestamps every progress line, and reports, from 10 % progress on, the largest error of the shown
ETA against the time the reading really still took. A fresh data folder per length, so the ETA
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

LINE = re.compile(r"reading: (\d+) / (\d+) tokens .*ETA (?:(\d+) min )?(\d+) s")


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
                eta = int(m.group(3) or 0) * 60 + int(m.group(4))
                points.append((now, done, total, eta))
    p.wait()
    if p.returncode != 0 or not points:
        raise SystemExit(f"reading {tokens} tokens failed ({p.returncode})")
    end = next(t for t, d, n, _ in points if d == n)  # the reading's last progress line
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
    print("| library tokens | reading s | ETA shown / really left at 10 %, 25 %, 50 %, 75 %, 90 % (s) | worst error from 10 % on, while ≥ 5 s are left |")
    print("|---|---|---|---|")
    for n in [int(x) for x in a.lengths.split(",")]:
        total, seconds, rows = read_with_eta(os.path.abspath(a.quire), model, a.work, n, a.chunk, env)
        # The ETA is shown in whole seconds, so in its last seconds the rounding alone is tens of percent.
        samples = []
        for q in (0.10, 0.25, 0.50, 0.75, 0.90):
            r = min(rows, key=lambda x: abs(x[0] - q))
            samples.append(f"{r[1]} / {r[2]:.1f}")
        long_rows = [r for r in rows if r[2] >= 5.0]
        if long_rows:
            worst = max(long_rows, key=lambda r: abs(r[1] - r[2]) / r[2])
            err = f"{abs(worst[1] - worst[2]) / worst[2] * 100:.0f} % (at {worst[0] * 100:.0f} %: {worst[1]} s shown, {worst[2]:.1f} s left)"
        else:
            err = "(the whole reading took under 5 s after 10 %)"
        print(f"| {total:,} | {seconds:.1f} | {', '.join(samples)} | {err} |", flush=True)


if __name__ == "__main__":
    main()
