#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Replays a whole session on a ~1M-token library with the real 9B configuration (random weights)
through the `quire` command line, on the GPU: the first question (reads the library, saves its
state), a question in a new process (a new chat, from the saved state), and a follow-up in the first
chat (a new process again: the prefix state plus the chat's delta); then an add of a small file,
`library show`, and a question that extends the saved state by the note. For each step it reports the
wall time, the time to the first answer token (from ask's footer), to the first stdout byte, from the
last stdout byte to the process's exit, the peak resident and peak anonymous memory of the process, and the
disk used by the saved states. The output is a Markdown table for docs/benchmarks.md.

    python3 tools/bench/replay_1m_session.py --quire build/app/quire --tokenizer-from build/tiny-models/tiny-a \
        --work /tmp/replay [--tokens 950000] [--chunk 8192]

The model folder (work/model) is made once with tools/bench/make_random_model.py from the real
config.json; the tokenizer is a tiny model's (the weights are random, so only the token count of the
library matters, and the config's special-token ids are set to that tokenizer's).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def make_model(work, tokenizer_from):
    model = os.path.join(work, "model")
    if os.path.exists(os.path.join(model, "model.safetensors.index.json")):
        return model
    os.makedirs(model, exist_ok=True)
    with open(os.path.join(ROOT, "tests/data/real_config/config.json")) as f:
        config = json.load(f)
    with open(os.path.join(tokenizer_from, "config.json")) as f:
        tiny = json.load(f)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        config[key] = tiny[key]
    cfg = os.path.join(work, "config.json")
    with open(cfg, "w") as f:
        json.dump(config, f, indent=1)
    subprocess.run([sys.executable, os.path.join(HERE, "make_random_model.py"), model, "--config", cfg], check=True)
    for name in ("tokenizer.model", "tokenizer_config.json", "added_tokens.json", "special_tokens_map.json", "generation_config.json"):
        if os.path.exists(os.path.join(tokenizer_from, name)):
            shutil.copy(os.path.join(tokenizer_from, name), model)
    return model


def make_text(path, chars):
    """A long text from the repository's own documents and corpus, repeated with chapter marks."""
    parts = []
    for folder in ("docs", "resources/tokenizer_corpus"):
        for name in sorted(os.listdir(os.path.join(ROOT, folder))):
            if name.endswith((".md", ".txt")):
                with open(os.path.join(ROOT, folder, name), encoding="utf-8") as f:
                    parts.append(f.read())
    base = "\n\n".join(parts)
    out, n = [], 0
    while n < chars:
        chapter = f"\n\n=== Chapter {len(out) + 1} ===\n\n" + base
        out.append(chapter)
        n += len(chapter)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(out)[:chars])


def status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(cmd, env):
    """Runs cmd, polling its memory; returns (wall s, first stdout byte s, last byte to exit s, peak RSS GiB, peak anon GiB, output)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    os.set_blocking(p.stdout.fileno(), False)
    first = last = None
    out = b""
    peak_rss = peak_anon = 0
    while True:
        try:
            chunk = p.stdout.read()
        except BlockingIOError:
            chunk = None
        if chunk:
            now = time.monotonic()
            first = first if first is not None else now
            last = now
            out += chunk
        peak_rss = max(peak_rss, status_kib(p.pid, "VmHWM"))
        peak_anon = max(peak_anon, status_kib(p.pid, "RssAnon"))
        if p.poll() is not None:
            rest = p.stdout.read() or b""
            if rest:
                last = time.monotonic()
                out += rest
            break
        time.sleep(0.02)
    end = time.monotonic()
    err = p.stderr.read().decode(errors="replace")
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{err[-2000:]}")
    gib = 1024 * 1024
    return (end - t0, (first - t0) if first else float("nan"), (end - last) if last else float("nan"), peak_rss / gib, peak_anon / gib,
            out.decode(errors="replace") + err)


def disk_gb(folder):
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            total += os.path.getsize(os.path.join(dirpath, name))
    return total / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quire", required=True)
    ap.add_argument("--tokenizer-from", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--tokens", type=int, default=950000)
    ap.add_argument("--chunk", type=int, default=8192)
    ap.add_argument("--chars-per-token", type=float, default=1.85)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    q = os.path.abspath(a.quire)
    t = time.monotonic()
    model = make_model(a.work, a.tokenizer_from)
    print(f"model folder ready in {time.monotonic() - t:.0f} s", flush=True)
    data = os.path.join(a.work, "data")
    shutil.rmtree(data, ignore_errors=True)
    text = os.path.join(a.work, "book.txt")
    make_text(text, int(a.tokens * a.chars_per_token))
    common = ["--data-dir", data]
    subprocess.run([q, "library", "create", "book"] + common, check=True, env=env)
    subprocess.run([q, "config", "model", model] + common, check=True, env=env)
    subprocess.run([q, "add", "book", text, "--max-file-size", str(8 << 20)] + common, check=True, env=env)
    show = subprocess.run([q, "library", "show", "book"] + common, check=True, env=env, capture_output=True, text=True).stdout
    print(show, flush=True)
    ask = ["ask", "book", "--backend", "cuda", "--no-think", "--max-tokens", "16", "--chunk", str(a.chunk)] + common
    steps = [
        ("first question (reads the library, saves its state and chat 1)", [q] + ask + ["What is the first chapter about?"]),
        ("a question in a new process (chat 2, from the saved state)", [q] + ask + ["Which chapter mentions the GPU?"]),
        ("a follow-up in chat 1 (new process: prefix state + chat delta)", [q] + ask + ["--chat", "1", "And the second chapter?"]),
    ]
    # Then the library grows by a small file: the add counts the library from the token ids kept in the
    # database, `library show` too, and the next question extends the saved state (the one it extends
    # is removed, not kept beside it).
    note = os.path.join(a.work, "note.txt")
    with open(note, "w", encoding="utf-8") as f:
        f.write("A short note added after the book: the lighthouse keeper counted 117 steps.\n" * 40)
    steps += [
        ("add a small file (the library's ids read from the database)", [q, "add", "book", note] + common),
        ("library show (the same)", [q, "library", "show", "book"] + common),
        ("a question after the add (loads the state, reads only the note, saves the longer state)", [q] + ask + ["What did the note add?"]),
    ]
    rows = []
    for name, cmd in steps:
        wall, first, tail, rss, anon, out = run(cmd, env)
        m = re.search(r"\(([0-9.]+) s after the command\)", out)
        rows.append((name, wall, first, tail, rss, anon, disk_gb(data), m.group(1) if m else "—"))
        print(f"{name}: {wall:.1f} s; output tail: {out.strip()[-300:]}", flush=True)
    # The random model's answers are mostly ids past the tiny tokenizer's vocabulary, which print as
    # nothing: the first stdout byte can be the line after the answer. The first token's time comes from
    # ask's own footer instead ("N s after the command", the model's loading included).
    print("\n| step | wall s | first token s | first stdout byte s | last byte to exit s | peak RSS GiB | peak anonymous GiB | disk after GB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, wall, first, tail, rss, anon, disk, token in rows:
        print(f"| {name} | {wall:.1f} | {token} | {first:.1f} | {tail:.2f} | {rss:.2f} | {anon:.2f} | {disk:.2f} |")
    for dirpath, _, files in os.walk(data):
        for name in sorted(files):
            if name.endswith(".qstate"):
                print(f"  {os.path.relpath(os.path.join(dirpath, name), data)}: {os.path.getsize(os.path.join(dirpath, name)) / 1e9:.3f} GB")


if __name__ == "__main__":
    main()
