#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks the reading ETA that `quire ask` shows (app/session/read_eta.*) against the real time: reads
libraries of about 128K and 1M tokens with the real 9B configuration (random weights) on the GPU,
timestamps every progress line, and reports, from 10 % progress on, the largest error of the shown
ETA against the time the reading really still took (over the lines with at least 5 s left, and with
at least 1 s — the ETA is shown in tenths of a second under 10 s, so its rounding stays under 5 %
there). A fresh data folder per length, so the ETA starts from the model the app ships with (the
cost is learned only after a first long read).

A progress line begins with \\r and only the last one ends with \\n, so a line is stamped when its
own text (up to its "ETA X s") has arrived, not when the next separator comes: the latter is when
the next line begins, one chunk late.

Each read's lines (tokens done, total, seconds since the first line, ETA shown) go to
WORK/chunks-N.csv, the data tests/test_read_eta.cpp replays (tests/data/eta/). With --table-from
DIR the table is printed from DIR's chunks-N.csv files instead of reading anew.

    python3 tools/bench/eta_check.py --quire build/app/quire --tokenizer-from build/tiny-models/tiny-a --work /tmp/eta
    python3 tools/bench/eta_check.py --table-from tests/data/eta
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
    points = []
    buf, counted = b"", False  # the text after the last separator; whether it was stamped already

    def stamp(piece, now):
        m = LINE.search(piece.decode(errors="replace"))
        if m:
            done, total = int(m.group(1)), int(m.group(2))
            eta = int(m.group(3) or 0) * 60 + float(m.group(4))
            points.append((now, done, total, eta))
        return m is not None

    while True:
        chunk_bytes = p.stderr.read1(4096)
        if not chunk_bytes:
            break
        now = time.monotonic()
        buf += chunk_bytes
        *complete, buf = re.split(rb"[\r\n]", buf)
        for i, piece in enumerate(complete):
            if not (i == 0 and counted):  # the first completes the text stamped while it was open
                stamp(piece, now)
        if complete:
            counted = False
        # A line whose text is all there ("... ETA X s") is stamped now; a read may cut one in the
        # middle ("ETA 1" before ".3 s"), which does not match yet.
        if not counted:
            counted = stamp(buf, now)
    p.wait()
    if p.returncode != 0 or not points:
        raise SystemExit(f"reading {tokens} tokens failed ({p.returncode})")
    t0 = points[0][0]
    with open(os.path.join(work, f"chunks-{tokens}.csv"), "w") as f:
        f.write("done,total,seconds_since_first_line,eta_shown_s\n")
        for t, d, n, eta in points:
            f.write(f"{d},{n},{t - t0:.3f},{eta}\n")
    return [(d, n, t - t0, eta) for t, d, n, eta in points]


def read_csv(path):
    with open(path) as f:
        lines = f.read().split("\n")
    if lines[0] != "done,total,seconds_since_first_line,eta_shown_s":
        raise SystemExit(f"{path}: not the header this script writes")
    return [(int(d), int(n), float(t), float(e)) for d, n, t, e in (l.split(",") for l in lines[1:] if l)]


def table_row(lines):
    """The markdown row of one read: (done, total, seconds since the first line, ETA shown) per line."""
    total = lines[-1][1]
    end = next(t for d, n, t, _ in lines if d == n)  # the reading's last progress line
    rows = [(d / n, eta, end - t) for d, n, t, eta in lines if n / 10 <= d < n]
    samples = []
    for q in (0.10, 0.25, 0.50, 0.75, 0.90):
        r = min(rows, key=lambda x: abs(x[0] - q))
        samples.append(f"{r[1]:g} / {r[2]:.1f}")

    def worst_of(min_left):
        rs = [r for r in rows if r[2] >= min_left]
        if not rs:
            return None, f"(no line with {min_left:g} s left)"
        w = max(rs, key=lambda r: abs(r[1] - r[2]) / r[2])
        e = abs(w[1] - w[2]) / w[2]
        return e, f"{e * 100:.0f} % ({w[0] * 100:.0f} %: {w[1]:g} / {w[2]:.1f})"

    _, err_long = worst_of(5.0)
    e_all, err_all = worst_of(1.0)
    return e_all, f"| {total:,} | {end - lines[0][2]:.1f} | {' | '.join(samples)} | {err_long} | {err_all} |"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quire")
    ap.add_argument("--tokenizer-from")
    ap.add_argument("--work")
    ap.add_argument("--table-from", help="print the table from this folder's chunks-N.csv files, reading nothing")
    ap.add_argument("--lengths", default="131072,1000000")
    ap.add_argument("--chunk", type=int, default=8192)
    a = ap.parse_args()
    if not a.table_from and not (a.quire and a.tokenizer_from and a.work):
        ap.error("give --quire, --tokenizer-from and --work, or --table-from")
    lengths = [int(x) for x in a.lengths.split(",")]
    if not a.table_from:
        os.makedirs(a.work, exist_ok=True)
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        model = make_model(a.work, a.tokenizer_from)
    print("ETA shown / really left, in seconds; reading s: from the first progress line to the last.")
    print("| library tokens | reading s | at 10 % | 25 % | 50 % | 75 % | 90 % | worst from 10 % on, ≥ 5 s left | worst, ≥ 1 s left |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst_all = 0.0
    for n in lengths:
        if a.table_from:
            lines = read_csv(os.path.join(a.table_from, f"chunks-{n}.csv"))
        else:
            lines = read_with_eta(os.path.abspath(a.quire), model, a.work, n, a.chunk, env)
        e_all, row = table_row(lines)
        if e_all is not None:
            worst_all = max(worst_all, e_all)
        print(row, flush=True)
    print(f"worst error from 10 % on, all lengths: {worst_all * 100:.0f} % (while ≥ 1 s is left; the issue asks ≤ 20 %)")


if __name__ == "__main__":
    main()
