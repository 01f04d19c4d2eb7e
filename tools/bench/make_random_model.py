"""Writes a MiniCPM-SALA folder in the official layout (config.json, sharded safetensors with an
index) with random bf16 weights, for benchmarks: the real 9B configuration by default.

    python3 tools/bench/make_random_model.py OUT_DIR [--config tests/data/real_config/config.json]
Weights: N(0, 1/fan_in) for matrices (activations stay at unit scale), 1 + N(0, 0.01) for norms.
"""

import argparse
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file


def tensors(c):
    h, i = c["hidden_size"], c["intermediate_size"]
    heads, kv, d = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    lh, ld = c.get("lightning_nh", heads), c.get("lightning_head_dim", d)
    yield "model.embed_tokens.weight", (c["vocab_size"], h)
    for l, kind in enumerate(c["mixer_types"]):
        p = f"model.layers.{l}."
        yield p + "input_layernorm.weight", (h,)
        yield p + "post_attention_layernorm.weight", (h,)
        yield p + "mlp.gate_proj.weight", (i, h)
        yield p + "mlp.up_proj.weight", (i, h)
        yield p + "mlp.down_proj.weight", (h, i)
        if kind == "minicpm4":
            yield p + "self_attn.q_proj.weight", (heads * d, h)
            yield p + "self_attn.k_proj.weight", (kv * d, h)
            yield p + "self_attn.v_proj.weight", (kv * d, h)
            yield p + "self_attn.o_proj.weight", (h, heads * d)
            yield p + "self_attn.o_gate.weight", (heads * d, h)
        else:
            w = lh * ld
            for n in ("q_proj", "k_proj", "v_proj", "z_proj"):
                yield p + f"self_attn.{n}.weight", (w, h)
            yield p + "self_attn.o_proj.weight", (h, w)
            yield p + "self_attn.q_norm.weight", (ld,)
            yield p + "self_attn.k_norm.weight", (ld,)
            yield p + "self_attn.o_norm.weight", (w,)
    yield "model.norm.weight", (h,)
    yield "lm_head.weight", (c["vocab_size"], h)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--config", default=os.path.join(os.path.dirname(__file__), "../../tests/data/real_config/config.json"))
    ap.add_argument("--shard-gb", type=float, default=5.0)
    args = ap.parse_args()
    with open(args.config) as f:
        c = json.load(f)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    rng = np.random.default_rng(1)
    shards, current, size, weight_map = [], {}, 0, {}
    for name, shape in tensors(c):
        if len(shape) == 1:
            a = 1.0 + 0.01 * rng.standard_normal(shape, dtype=np.float32)
        else:
            a = rng.standard_normal(shape, dtype=np.float32) * np.float32(1.0 / np.sqrt(shape[1]))
        current[name] = torch.from_numpy(a).to(torch.bfloat16)
        size += a.size * 2
        if size >= args.shard_gb * 1e9:
            shards.append(current)
            current, size = {}, 0
    if current:
        shards.append(current)
    for k, shard in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, os.path.join(args.out, fname), metadata={"format": "pt"})
        for name in shard:
            weight_map[name] = fname
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    print(f"wrote {len(weight_map)} tensors in {len(shards)} shards to {args.out}")


if __name__ == "__main__":
    main()
