"""A plain PyTorch reference of MiniCPM-SALA, written from docs/model.md (sections 2-4).

Readable top to bottom: no fused kernels, no fla / flash-attn / infllm_v2. Activations are fp32
tensors; with `bf16=True` they are rounded to bf16 exactly where docs/model.md says the official
model rounds (that is what `R()` does), with `bf16=False` nothing is rounded (the "fp32 mode" the
engine's exact invariance tests use). Weights are the checkpoint's bf16 values; a GPTQ checkpoint's
quantized layers are dequantized by gptq.py (docs/quantization.md) to fp32, and rounded to bf16 in
bf16 mode, as the engine's GEMM does.

Positions are absolute. A sparse-layer query at position p uses InfLLM-v2 when p + 1 >= dense_len
("per-query" rule, docs/sparse-regime.md) or, with regime="per-request", when the request it belongs
to ends at or beyond dense_len.
"""

import json
import math
import os

import numpy as np
import torch

try:
    from safetensors.torch import load_file
except ImportError:  # a machine without the package: read the (simple) format directly
    def load_file(path):
        from gptq import read_safetensors
        dtypes = {"BF16": (np.uint16, 2), "F32": (np.float32, 4), "F16": (np.float16, 2)}
        out = {}
        for name, (dtype, shape, raw) in read_safetensors(path).items():
            np_type, _ = dtypes[dtype]
            array = np.frombuffer(raw, dtype=np_type).reshape(shape)
            if dtype == "BF16":  # bf16 bits are the top half of an fp32
                array = (array.astype(np.uint32) << 16).view(np.float32)
            out[name] = torch.from_numpy(array.copy())
        return out


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------

class Config:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            c = json.load(f)
        self.raw = c
        self.vocab = c["vocab_size"]
        self.hidden = c["hidden_size"]
        self.intermediate = c["intermediate_size"]
        self.layers = c["num_hidden_layers"]
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads", self.heads)
        self.head_dim = c.get("head_dim", self.hidden // self.heads)
        self.l_heads = c.get("lightning_nh", self.heads)
        self.l_head_dim = c.get("lightning_head_dim", self.head_dim)
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.theta = c.get("rope_theta", 10000.0)
        self.scale_emb = c.get("scale_emb", 1.0)
        self.residual = c.get("scale_depth", 1.0) / math.sqrt(self.layers)
        self.logit_div = self.hidden / c.get("dim_model_base", self.hidden)
        self.mixers = ["sparse" if m == "minicpm4" else "lightning" for m in c["mixer_types"]]
        s = c.get("sparse_config", {})
        self.block = s.get("block_size", 64)
        self.c1_kernel, self.c1_stride = s.get("kernel_size", 32), s.get("kernel_stride", 16)
        f = self.block // self.c1_stride  # 4 C1 entries per block
        self.c2_kernel, self.c2_stride = self.c1_kernel * f, self.c1_stride * f
        self.init_blocks = s.get("init_blocks", 1)
        self.local_blocks = s.get("window_size", 2048) // self.block
        self.topk = s.get("topk", 64) + self.local_blocks
        self.dense_len = s.get("dense_len", 8192)
        self.eos = c.get("eos_token_id", [2])


def load_weights(model_dir, device, bf16=True):
    """All tensors of the checkpoint, through the index when there is one; GPTQ layers dequantized."""
    with open(os.path.join(model_dir, "config.json")) as f:
        quant = json.load(f).get("quantization_config")
    if quant is not None:
        import gptq
        return {name: torch.tensor(values, dtype=torch.float32, device=device).reshape(shape)
                for name, (shape, values) in gptq.load_dequantized(model_dir, quant, round_to_bf16=bf16).items()}
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights = {}
    for name in files:
        for key, tensor in load_file(os.path.join(model_dir, name)).items():
            weights[key] = tensor.to(device=device, dtype=torch.float32)
    return weights


def alibi_slopes(n):
    """ALiBi slopes (Press et al. 2022) for n heads; Lightning's decay is exp(-slope)."""
    def power_of_two(m):
        start = 2.0 ** (-(2.0 ** -(math.log2(m) - 3)))
        return [start ** (i + 1) for i in range(m)]
    closest = 2 ** math.floor(math.log2(n))
    if closest == n:
        return power_of_two(n)
    return power_of_two(closest) + power_of_two(2 * closest)[0::2][: n - closest]


# ------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------

class SalaReference:
    def __init__(self, model_dir, device="cpu", bf16=True, regime="per-query"):
        self.c = Config(model_dir)
        self.w = load_weights(model_dir, device, bf16)
        self.device = device
        self.bf16 = bf16
        self.regime = regime
        self.slopes = torch.tensor(alibi_slopes(self.c.l_heads), dtype=torch.float64, device=device)

    # -- state -----------------------------------------------------------------------------------
    def new_state(self):
        """Per Lightning layer the fp32 state [heads, dk, dv]; per sparse layer K and V [N, kv, d]."""
        c = self.c
        state = {"n": 0, "S": {}, "K": {}, "V": {}}
        for l, kind in enumerate(c.mixers):
            if kind == "lightning":
                state["S"][l] = torch.zeros(c.l_heads, c.l_head_dim, c.l_head_dim, device=self.device)
            else:
                state["K"][l] = torch.zeros(0, c.kv_heads, c.head_dim, device=self.device)
                state["V"][l] = torch.zeros(0, c.kv_heads, c.head_dim, device=self.device)
        return state

    # -- primitives -------------------------------------------------------------------------------
    def R(self, x):
        """Round to bf16 (where the official model holds a bf16 tensor)."""
        return x.to(torch.bfloat16).to(torch.float32) if self.bf16 else x

    def linear(self, x, name):
        return self.R(x @ self.w[name].T)

    def rms_norm(self, x, weight):
        var = (x * x).mean(-1, keepdim=True)
        return self.R(self.R(x * torch.rsqrt(var + self.c.eps)) * weight)

    def rope(self, x, positions):
        """Non-interleaved ("rotate half") RoPE on [T, H, D]; angles in fp32 as the HF table."""
        d = x.shape[-1]
        inv_freq = 1.0 / (self.c.theta ** (torch.arange(0, d, 2, device=self.device, dtype=torch.float32) / d))
        angle = positions.to(torch.float32)[:, None] * inv_freq[None, :]
        cos = torch.cat([angle.cos(), angle.cos()], -1)[:, None, :]
        sin = torch.cat([angle.sin(), angle.sin()], -1)[:, None, :]
        half = d // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
        return self.R(x * cos + rotated * sin)

    # -- Lightning layers (simple GLA, docs/model.md §4) ---------------------------------------------
    def gla_recurrent(self, q, k, v, S):
        """The definition: S <- gamma S + k v^T ; o = s q^T S. q,k,v: [T, H, D]; S updated in place."""
        gamma = torch.exp(-self.slopes).to(torch.float32)[:, None, None]
        s = 1.0 / math.sqrt(q.shape[-1])
        out = []
        for t in range(q.shape[0]):
            S.mul_(gamma).add_(k[t][:, :, None] * v[t][:, None, :])
            out.append(s * torch.einsum("hd,hde->he", q[t], S))
        return torch.stack(out)

    def gla_chunked(self, q, k, v, pos0, S):
        """The chunked form over chunks aligned to absolute multiples of 64 (docs/model.md §4)."""
        s = 1.0 / math.sqrt(q.shape[-1])
        out = []
        t0, T = 0, q.shape[0]
        while t0 < T:
            L = min(T - t0, 64 - (pos0 + t0) % 64)
            qc, kc, vc = q[t0:t0 + L], k[t0:t0 + L], v[t0:t0 + L]
            i = torch.arange(L, device=self.device, dtype=torch.float64)
            # gamma^(i-j) for j <= i, from exp(-(i-j) * slope) (never gamma^-j: it overflows).
            diff = (i[:, None] - i[None, :])
            decay = torch.exp(-self.slopes[:, None, None] * diff.clamp(min=0)) * (diff >= 0)
            decay = decay.to(torch.float32)                                     # [H, L, L]
            inter = torch.exp(-self.slopes[:, None] * (i[None, :] + 1)).to(torch.float32)  # [H, L]
            scores = torch.einsum("ihd,jhd->hij", qc, kc) * decay               # [H, L, L]
            o = torch.einsum("hij,jhe->ihe", scores, vc)
            o = o + inter.T[:, :, None] * torch.einsum("ihd,hde->ihe", qc, S)
            out.append(s * o)
            tail = torch.exp(-self.slopes[:, None] * (L - 1 - i[None, :])).to(torch.float32)  # [H, L]
            S.mul_(torch.exp(-self.slopes * L).to(torch.float32)[:, None, None])
            S.add_(torch.einsum("hj,jhd,jhe->hde", tail, kc, vc))
            t0 += L
        return torch.cat(out)

    def lightning(self, l, h, pos0, state, recurrent=False):
        c, p = self.c, f"model.layers.{l}.self_attn."
        T = h.shape[0]
        q = self.linear(h, p + "q_proj.weight").view(T, c.l_heads, c.l_head_dim)
        k = self.linear(h, p + "k_proj.weight").view(T, c.l_heads, c.l_head_dim)
        v = self.linear(h, p + "v_proj.weight").view(T, c.l_heads, c.l_head_dim)
        q = self.rms_norm(q, self.w[p + "q_norm.weight"])
        k = self.rms_norm(k, self.w[p + "k_norm.weight"])
        positions = torch.arange(pos0, pos0 + T, device=self.device)
        q, k = self.rope(q, positions), self.rope(k, positions)
        S = state["S"][l]
        o = self.gla_recurrent(q, k, v, S) if recurrent else self.gla_chunked(q, k, v, pos0, S)
        o = self.R(o).reshape(T, -1)
        o = self.rms_norm(o, self.w[p + "o_norm.weight"])
        o = self.R(o * self.R(torch.sigmoid(self.linear(h, p + "z_proj.weight"))))
        return self.linear(o, p + "o_proj.weight")

    # -- Sparse layers (dense below dense_len, InfLLM-v2 above; docs/model.md §3) ---------------------
    def compressed_keys(self, K, kernel, stride, n_keys):
        """Means of `kernel` keys at `stride` over the first n_keys keys, rounded: [n, kv, d]."""
        n = 0 if n_keys < kernel else (n_keys - kernel) // stride + 1
        if n == 0:
            return K.new_zeros(0, K.shape[1], K.shape[2])
        windows = K[: (n - 1) * stride + kernel].unfold(0, kernel, stride)  # [n, kv, d, kernel]
        return self.R(windows.mean(-1))

    def select_blocks(self, q_group, C1, C2, g, p):
        """InfLLM-v2 selection for the query at p and KV group g (docs/model.md §3.3-3.5)."""
        c = self.c
        qb = p // c.block
        if qb + 1 <= c.topk:
            return list(range(qb + 1))
        n1 = (p + 1 - c.c1_kernel) // c.c1_stride + 1   # C1 windows ending at or before p
        n2 = (p + 1 - c.c2_kernel) // c.c2_stride + 1
        s = 1.0 / math.sqrt(c.head_dim)
        l2 = s * (q_group @ C2[:n2, g].T)                          # [group, n2]
        m = l2.max(-1, keepdim=True).values
        z = torch.exp(l2 - m).sum(-1, keepdim=True)
        probs = torch.exp(s * (q_group @ C1[:n1, g].T) - m) / z    # [group, n1]
        score = self.R(probs.sum(0))                               # summed over the group's heads
        f = c.block // c.c1_stride
        forced = set(range(min(c.init_blocks, qb + 1))) | set(range(max(0, qb - c.local_blocks), qb + 1))
        candidates = [b for b in range(qb + 1) if b not in forced]
        pooled = torch.stack([score[max(0, f * b - 1): min(n1, f * b + f)].max() for b in candidates])
        # Highest score first; ties go to the lower block index (stable sort over ascending blocks).
        order = torch.sort(-pooled, stable=True).indices.tolist()
        want = c.topk - len(forced)
        return sorted(forced | {candidates[i] for i in order[:want]})

    def sparse(self, l, h, pos0, state, request_end):
        c, p = self.c, f"model.layers.{l}.self_attn."
        T = h.shape[0]
        q = self.linear(h, p + "q_proj.weight").view(T, c.heads, c.head_dim)
        k = self.linear(h, p + "k_proj.weight").view(T, c.kv_heads, c.head_dim)
        v = self.linear(h, p + "v_proj.weight").view(T, c.kv_heads, c.head_dim)
        K = state["K"][l] = torch.cat([state["K"][l], k])
        V = state["V"][l] = torch.cat([state["V"][l], v])
        N = K.shape[0]
        C1 = self.compressed_keys(K, c.c1_kernel, c.c1_stride, N)
        C2 = self.compressed_keys(K, c.c2_kernel, c.c2_stride, N)
        group = c.heads // c.kv_heads
        s = 1.0 / math.sqrt(c.head_dim)
        out = torch.zeros(T, c.heads, c.head_dim, device=self.device)

        def is_sparse(pos):
            return (pos + 1 >= c.dense_len) if self.regime == "per-query" else (request_end >= c.dense_len)

        dense_rows = [t for t in range(T) if not is_sparse(pos0 + t)]
        # Dense causal attention, batched over query tiles: query at position P sees keys 0..P.
        for start in range(0, len(dense_rows), 512):
            rows = torch.tensor(dense_rows[start:start + 512], device=self.device)
            pos = rows + pos0
            keys = int(pos.max()) + 1
            for g in range(c.kv_heads):
                qg = q[rows, g * group:(g + 1) * group]                          # [r, group, d]
                sc = s * torch.einsum("rhd,kd->rhk", qg, K[:keys, g])
                mask = torch.arange(keys, device=self.device)[None, :] > pos[:, None]
                sc = sc.masked_fill(mask[:, None, :], float("-inf"))
                out[rows, g * group:(g + 1) * group] = torch.einsum("rhk,kd->rhd", torch.softmax(sc, -1), V[:keys, g])
        # InfLLM-v2 queries, one at a time.
        for t in range(T):
            P = pos0 + t
            if not is_sparse(P):
                continue
            for g in range(c.kv_heads):
                qg = q[t, g * group:(g + 1) * group]
                blocks = self.select_blocks(qg, C1, C2, g, P)
                keys = torch.cat([torch.arange(b * c.block, min(P, b * c.block + c.block - 1) + 1) for b in blocks]).to(self.device)
                w = torch.softmax(s * (qg @ K[keys, g].T), -1)
                out[t, g * group:(g + 1) * group] = w @ V[keys, g]
        o = self.R(out).reshape(T, -1)
        o = self.R(o * self.R(torch.sigmoid(self.linear(h, p + "o_gate.weight"))))
        return self.linear(o, p + "o_proj.weight")

    # -- whole model ---------------------------------------------------------------------------------
    def forward(self, tokens, state, request_end=None, want=(), recurrent=False):
        """Feeds `tokens` (absolute positions state['n']...) and returns logits rows for the chunk-
        local indices in `want`."""
        c = self.c
        pos0, T = state["n"], len(tokens)
        if request_end is None:
            request_end = pos0 + T
        ids = torch.tensor(tokens, device=self.device)
        x = self.R(self.w["model.embed_tokens.weight"][ids] * c.scale_emb)
        for l, kind in enumerate(c.mixers):
            p = f"model.layers.{l}."
            h = self.rms_norm(x, self.w[p + "input_layernorm.weight"])
            a = self.sparse(l, h, pos0, state, request_end) if kind == "sparse" else self.lightning(l, h, pos0, state, recurrent)
            x = self.R(x + self.R(a * c.residual))
            h = self.rms_norm(x, self.w[p + "post_attention_layernorm.weight"])
            act = self.R(self.R(torch.nn.functional.silu(self.linear(h, p + "mlp.gate_proj.weight"))) * self.linear(h, p + "mlp.up_proj.weight"))
            x = self.R(x + self.R(self.linear(act, p + "mlp.down_proj.weight") * c.residual))
        state["n"] = pos0 + T
        if not want:
            return []
        rows = self.rms_norm(x[list(want)], self.w["model.norm.weight"])
        rows = self.R(rows / c.logit_div)
        return self.R(rows @ self.w["lm_head.weight"].T)

    def run(self, tokens, positions, prefill=None, chunk=None, decode_from=None, state=None):
        """Feeds tokens as: one prefill of `prefill` tokens (default all up to decode_from), then
        chunks of `chunk` up to decode_from, then one token at a time. Returns {position: logits}."""
        state = state or self.new_state()
        n = len(tokens)
        decode_from = n if decode_from is None else decode_from
        prefill = decode_from if prefill is None else prefill
        rows = {}
        request_end = decode_from  # one prefill request, however it is split
        spans = [(0, prefill)]
        if chunk:
            spans += [(a, min(a + chunk, decode_from)) for a in range(prefill, decode_from, chunk)]
        for a, b in spans:
            if a >= b:
                continue
            want = [p - a for p in positions if a <= p < b]
            out = self.forward(tokens[a:b], state, request_end, want)
            for i, p in enumerate(p for p in positions if a <= p < b):
                rows[p] = out[i]
        for p in range(decode_from, n):
            out = self.forward(tokens[p:p + 1], state, p + 1, [0], recurrent=True)
            if p in positions:
                rows[p] = out[0]
        return rows

    def greedy(self, prompt, steps):
        """Greedy tokens after the prompt (ties to the lower id), and the smallest top-1 margin."""
        state = self.new_state()
        logits = self.forward(prompt, state, want=[len(prompt) - 1])[0]
        tokens, margin = [], float("inf")
        for _ in range(steps):
            top2 = torch.topk(logits, 2)
            margin = min(margin, float(top2.values[0] - top2.values[1]))
            nxt = int(torch.argmax(logits))  # first maximum: the lower id wins a tie
            if nxt in self.c.eos:
                break
            tokens.append(nxt)
            logits = self.forward([nxt], state, want=[0], recurrent=True)[0]
        return tokens, margin
