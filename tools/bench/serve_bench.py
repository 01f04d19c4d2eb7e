#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Requests per second and time to first token through `quire serve` against the in-process
`quire ask`, on one model folder and one library. Not a test: run it by hand on the GPU machine and
copy the table it prints into docs/benchmarks.md.

  tools/bench/serve_bench.py --quire build/app/quire --model MODEL_DIR --data-dir DATA_DIR \
      --library NAME [--backend cuda] [--gpu 0] [--requests 16] [--concurrency 1,4,8] [--max-tokens 32]

The library must exist in DATA_DIR (quire library create / quire add). The script reads it once
first, so both sides start from its saved prefix state and time only the question and the answer.
`quire ask` is a new process per question (it loads the model each time): its first-token time comes
from its own --json figures, which start after loading; its wall time includes the load.
"""
import argparse
import json
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request


def run_ask(args, question):
    cmd = [args.quire, "ask", args.library, question, "--json", "--max-tokens", str(args.max_tokens),
           "--data-dir", args.data_dir, "--model", args.model, "--backend", args.backend, "--gpu", str(args.gpu)]
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    if out.returncode != 0:
        sys.exit(f"quire ask failed: {out.stderr.strip()}")
    return wall, json.loads(out.stdout.strip().splitlines()[-1])


def stream_request(url, library, question, max_tokens):
    """One streamed chat request; returns (time to first text, total time, completion tokens, the
    engine's own first-token time)."""
    body = json.dumps({"model": f"library/{library}", "messages": [{"role": "user", "content": question}],
                       "max_tokens": max_tokens, "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()
    req = urllib.request.Request(url + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
    t0 = time.monotonic()
    first = None
    tokens = 0
    engine_first = 0.0
    with urllib.request.urlopen(req, timeout=3600) as resp:
        for raw in resp:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and chunk["choices"][0]["delta"].get("content") and first is None:
                first = time.monotonic() - t0
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
                engine_first = chunk.get("quire", {}).get("first_token_seconds", 0.0)
    return (first if first is not None else time.monotonic() - t0), time.monotonic() - t0, tokens, engine_first


def start_server(args):
    cmd = [args.quire, "serve", "--port", "0", "--data-dir", args.data_dir, "--model", args.model,
           "--backend", args.backend, "--gpu", str(args.gpu), "--queue", "1024"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    match = re.search(r"http://127\.0\.0\.1:(\d+)", proc.stdout.readline())
    if not match:
        proc.kill()
        sys.exit("quire serve did not start")
    url = f"http://127.0.0.1:{match.group(1)}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit("quire serve did not load the model within 600 s")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quire", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--library", required=True)
    p.add_argument("--backend", default="cuda", choices=["cpu", "cuda"])
    p.add_argument("--gpu", type=int, default=0)
    p.add_argument("--requests", type=int, default=16)
    p.add_argument("--concurrency", default="1,4,8")
    p.add_argument("--max-tokens", type=int, default=32)
    args = p.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    if args.requests < 1 or args.max_tokens < 1 or min(levels) < 1:
        sys.exit("--requests, --max-tokens and --concurrency must be positive")

    run_ask(args, "Warm-up: read the library once.")  # saves the prefix state both sides start from
    rows = []
    walls, ttfts = [], []
    for i in range(args.requests):
        wall, j = run_ask(args, f"Question {i}: what is this about?")
        walls.append(wall)
        ttfts.append(j["first_token_seconds"])
    rows.append(("quire ask (a process per question)", 1, args.requests / sum(walls), None, None, statistics.median(ttfts)))

    proc, url = start_server(args)
    try:
        stream_request(url, args.library, "Warm-up.", 1)  # loads the library state into the server
        for c in levels:
            results = []
            lock = threading.Lock()
            queue = list(range(args.requests))

            def worker():
                while True:
                    with lock:
                        if not queue:
                            return
                        i = queue.pop()
                    r = stream_request(url, args.library, f"Question {i}: what is this about?", args.max_tokens)
                    with lock:
                        results.append(r)

            t0 = time.monotonic()
            threads = [threading.Thread(target=worker) for _ in range(c)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - t0
            first = [r[0] for r in results]
            rows.append(("quire serve (streamed)", c, args.requests / elapsed, statistics.median(first), max(first),
                         statistics.median(r[3] for r in results)))
    finally:
        proc.terminate()
        proc.wait(timeout=60)

    print(f"model {args.model}, library {args.library}, backend {args.backend}, "
          f"{args.requests} requests of at most {args.max_tokens} tokens each")
    print("client: from sending the request to the first text; engine: from the start of generation (after the")
    print("library state is ready and the request has left the queue), as `quire ask --json` reports it")
    print("| path | concurrent clients | requests/s | first token, client median (s) | client worst (s) | engine median (s) |")
    print("|---|---|---|---|---|---|")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"
    for name, c, rps, med, worst, engine in rows:
        print(f"| {name} | {c} | {rps:.2f} | {fmt(med)} | {fmt(worst)} | {fmt(engine)} |")


if __name__ == "__main__":
    main()
