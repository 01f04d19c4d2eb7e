"""Writes the golden fixtures under tests/data/golden/MODEL/ from the PyTorch reference.

    python3 tools/reference/make_golden.py --models-dir build/tiny-models --out tests/data/golden \
        --commit $(git rev-parse HEAD) tiny-a tiny-g16

GPTQ tiny models work the same way (tools/reference/make_gptq_golden.sh runs it for them): the
reference dequantizes their layers with tools/reference/gptq.py.

For each model, in fp32 and bf16 mode:
  short    a 300-token prompt, one shot
  long     a 9,103-token prompt (sparse regime past 8,192), one shot
  staged   the same prompt fed as a prefill of 8,000, chunks of 500 up to 9,000, then one token at a time
  greedy   16 greedy tokens after a 48-token prompt
Logits are kept at chosen positions only: those whose fp32 top-1 margin is at least 1e-3, so that
the same argmax is a fair demand of an fp32 engine (its differences are ~1e-6).
"""

import argparse
import datetime
import hashlib
import json
import os
import platform

import numpy as np
import torch

from sala_reference import SalaReference

SHORT, LONG = 300, 9103
SHORT_CANDIDATES = [0, 1, 2, 31, 63, 64, 65, 127, 128, 150, 200, 255, 256, 299]
LONG_CANDIDATES = [100, 1000, 4095, 6143, 6144, 6200, 7000, 8000, 8100, 8190, 8191, 8192, 8193, 8500, 8999,
                   9000, 9001, 9050, 9102]
MIN_MARGIN = 1e-3


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tokens(n, vocab, seed):
    rng = np.random.default_rng(seed)
    return [int(t) for t in rng.integers(3, vocab - 8, size=n)]


def margin(row):
    top2 = torch.topk(row, 2).values
    return float(top2[0] - top2[1])


def write_rows(path, rows, positions):
    np.stack([rows[p].float().cpu().numpy() for p in positions]).astype("<f4").tofile(path)


def make(model_dir, out_dir, device, commit):
    os.makedirs(out_dir, exist_ok=True)
    name = os.path.basename(model_dir.rstrip("/"))
    ref32 = SalaReference(model_dir, device, bf16=False)
    ref16 = SalaReference(model_dir, device, bf16=True)
    vocab = ref32.c.vocab
    short, long_ = tokens(SHORT, vocab, 1), tokens(LONG, vocab, 2)
    for fname, toks in (("short.txt", short), ("long.txt", long_)):
        with open(os.path.join(out_dir, fname), "w") as f:
            f.write(" ".join(map(str, toks)) + "\n")
    files = sorted(f for f in os.listdir(model_dir) if f.endswith(".safetensors") or f == "config.json")
    manifest = {
        "model": name,
        "model_files_sha256": {f: sha256(os.path.join(model_dir, f)) for f in files},
        "reference": "tools/reference/sala_reference.py",
        "reference_commit": commit,
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "regime": "per-query",
        # GPTQ models (docs/quantization.md): the settings the reference dequantized with, or null.
        "quantization_config": ref32.c.raw.get("quantization_config"),
        "min_margin_fp32": MIN_MARGIN,
        "cases": [],
        "greedy": [],
    }
    feeds = {
        "short": ("short.txt", short, SHORT_CANDIDATES, {}),
        "long": ("long.txt", long_, LONG_CANDIDATES, {}),
        "staged": ("long.txt", long_, LONG_CANDIDATES, {"prefill": 8000, "chunk": 500, "decode_from": 9000}),
    }
    for case, (tok_file, toks, candidates, feed) in feeds.items():
        rows32 = ref32.run(toks, candidates, **feed)
        kept = [p for p in candidates if margin(rows32[p]) >= MIN_MARGIN]
        rows16 = ref16.run(toks, kept, **feed)
        for mode, rows in (("fp32", rows32), ("bf16", rows16)):
            logits_file = f"{case}_{mode}.f32"
            write_rows(os.path.join(out_dir, logits_file), rows, kept)
            manifest["cases"].append({
                "name": case, "mode": mode, "tokens": tok_file, "feed": feed, "positions": kept,
                "logits": logits_file, "top1_margins": [round(margin(rows[p]), 6) for p in kept],
            })
        print(f"{name} {case}: kept {len(kept)} of {len(candidates)} positions", flush=True)
    prompt = short[:48]
    for mode, ref in (("fp32", ref32), ("bf16", ref16)):
        out, m = ref.greedy(prompt, 16)
        manifest["greedy"].append({"mode": mode, "prompt": prompt, "tokens": out, "min_top1_margin": round(m, 6)})
        print(f"{name} greedy {mode}: {out} (min margin {m:.2e})", flush=True)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--models-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for m in args.models:
        make(os.path.join(args.models_dir, m), os.path.join(args.out, m), args.device, args.commit)


if __name__ == "__main__":
    main()
