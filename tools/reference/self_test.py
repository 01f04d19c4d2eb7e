"""Self-test of the PyTorch reference: the Lightning chunked form equals the plain recurrence, and
feeding a long prompt incrementally (prefill, chunks, single tokens) equals one shot, in fp32 mode;
InfLLM-v2 equals dense attention wherever every block is selected.

    python3 tools/reference/self_test.py MODEL_DIR [--device cuda]
"""

import argparse
import sys

import torch

from sala_reference import SalaReference


def check(name, ok, detail=""):
    print(f"{'PASS' if ok else 'FAIL'}: {name} {detail}")
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--long", type=int, default=9103)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    ok = True

    ref = SalaReference(args.model, args.device, bf16=False)
    c = ref.c
    # 1. Lightning chunked vs recurrent, over calls that start at unaligned positions.
    g = torch.Generator().manual_seed(0)
    T, H, D = 200, c.l_heads, c.l_head_dim
    q, k, v = (0.3 * torch.randn(T, H, D, generator=g).to(args.device) for _ in range(3))
    S1 = torch.zeros(H, D, D, device=args.device)
    rec = ref.gla_recurrent(q, k, v, S1)
    for split in (200, 50, 77, 1):
        S2 = torch.zeros(H, D, D, device=args.device)
        parts = [ref.gla_chunked(q[a:a + split], k[a:a + split], v[a:a + split], a, S2) for a in range(0, T, split)]
        diff = (torch.cat(parts) - rec).abs().max().item()
        ok &= check(f"lightning chunked (calls of {split}) == recurrence", diff < 1e-4, f"max diff {diff:.2e}")

    # 2. Incremental == one shot across dense_len, in fp32 mode.
    n = args.long
    tokens = torch.randint(3, c.vocab - 8, (n,), generator=g).tolist()
    positions = [100, 6143, 6144, 8190, 8191, 8192, n - 50, n - 1]
    one = ref.run(tokens, positions)
    staged = ref.run(tokens, positions, prefill=8000, chunk=500, decode_from=n - 60)
    for p in positions:
        diff = (one[p] - staged[p]).abs().max().item()
        same = int(one[p].argmax()) == int(staged[p].argmax())
        ok &= check(f"incremental == one shot at {p}", diff <= 1e-3 and same, f"max diff {diff:.2e}")

    # 3. InfLLM-v2 == dense where every block is selected (dense_len lowered, per-request rule).
    sparse_ref = SalaReference(args.model, args.device, bf16=False, regime="per-request")
    sparse_ref.c.dense_len = 64
    short = tokens[:3000]
    a = ref.run(short, [2999])[2999]
    b = sparse_ref.run(short, [2999])[2999]
    diff = (a - b).abs().max().item()
    ok &= check("sparse == dense below 96 blocks", diff < 1e-5, f"max diff {diff:.2e}")

    # 4. Selection shape beyond 96 blocks: block 0, the 33 local blocks, 96 in all, none in the future.
    K = torch.randn(8000, c.kv_heads, c.head_dim, generator=g).to(args.device)
    C1 = ref.compressed_keys(K, c.c1_kernel, c.c1_stride, 8000)
    C2 = ref.compressed_keys(K, c.c2_kernel, c.c2_stride, 8000)
    qg = torch.randn(c.heads // c.kv_heads, c.head_dim, generator=g).to(args.device)
    sel = ref.select_blocks(qg, C1, C2, 0, 7999)
    qb = 7999 // 64
    ok &= check("selection shape", len(sel) == 96 and sel[0] == 0 and all(b in sel for b in range(qb - 32, qb + 1)) and max(sel) == qb)

    print("self-test", "PASSED" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
