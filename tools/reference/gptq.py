"""GPTQ weights for the reference, written from docs/quantization.md.

Pure Python (struct and array only, no torch or numpy) so that the same code is exercised on machines
without torch: test_gptq runs its command line against the C++ engine. Slow for big models, quick for
the tiny ones the fixtures use.

    python3 tools/reference/gptq.py quantize SRC DST --bits 4 --group-size 32 [--asym] [--desc-act]
                                              [--v2] [--dynamic sala]
    python3 tools/reference/gptq.py dequantize GPTQ_DIR DST   # the bf16 twin: dequantized, rounded

Semantics (docs/quantization.md section 4), with per_word = 32 // bits and mask = 2**bits - 1:
    q(k, j) = (qweight[k // per_word, j] >> (bits * (k % per_word))) & mask
    z(g, j) = (qzeros[g, j // per_word] >> (bits * (j % per_word))) & mask
    W[j, k] = scales[g_idx[k], j] * (q(k, j) - (z(g_idx[k], j) + zero_offset))
zero_offset is 1 for checkpoint_format "gptq", 0 for "gptq_v2". The `dynamic` rules are matched as
GPTQModel's dynamic_get does: in order, re.match on the full module name, the first match decides.
"""

import argparse
import array
import json
import os
import random
import re
import shutil
import struct
import sys

# ------------------------------------------------------------------------------------------------
# safetensors, read and written by hand (https://github.com/huggingface/safetensors, format section)
# ------------------------------------------------------------------------------------------------

SIZES = {"BF16": 2, "F16": 2, "F32": 4, "I32": 4, "I16": 2, "U8": 1}


def read_safetensors(path):
    """{name: (dtype, shape, raw bytes)}"""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        out[name] = (info["dtype"], list(info["shape"]), data[begin:end])
    return out


def write_safetensors(path, tensors):
    """tensors: [(name, dtype, shape, bytes)] written in this order (int32 first keeps alignment)."""
    header, offset = {}, 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, raw in tensors:
            f.write(raw)


def model_files(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            return sorted(set(json.load(f)["weight_map"].values()))
    return ["model.safetensors"]


def read_model(model_dir):
    tensors = {}
    for name in model_files(model_dir):
        tensors.update(read_safetensors(os.path.join(model_dir, name)))
    return tensors


def words(raw, code="i"):
    a = array.array(code)
    a.frombytes(raw)
    if sys.byteorder != "little":
        a.byteswap()
    return a


def bf16_values(raw):
    return [struct.unpack("<f", struct.pack("<I", h << 16))[0] for h in words(raw, "H")]


def fp16_values(raw):
    return list(struct.unpack("<%de" % (len(raw) // 2), raw))


def round_bf16(x):
    """float -> nearest bf16 (ties to even), as a float."""
    (u,) = struct.unpack("<I", struct.pack("<f", x))
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return struct.unpack("<f", struct.pack("<I", u))[0]


def bf16_bytes(values):
    out = array.array("H")
    for v in values:
        (u,) = struct.unpack("<I", struct.pack("<f", v))
        out.append(((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF)
    if sys.byteorder != "little":
        out.byteswap()
    return out.tobytes()


def i32_bytes(values):
    a = array.array("i", values)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


# ------------------------------------------------------------------------------------------------
# quantization_config
# ------------------------------------------------------------------------------------------------

def module_settings(qc, module):
    """The module's (bits, group_size, sym, desc_act), or None when a "-:" rule leaves it in bf16."""
    s = {"bits": qc["bits"], "group_size": qc.get("group_size", 128), "sym": qc.get("sym", True),
         "desc_act": qc.get("desc_act", False)}
    for pattern, overrides in (qc.get("dynamic") or {}).items():
        if pattern.startswith("-:"):
            if re.match(pattern[2:], module):
                return None
        elif re.match(pattern[2:] if pattern.startswith("+:") else pattern, module):
            for key in s:
                if key in overrides:
                    s[key] = overrides[key]
            break
    return s


def zero_offset(qc):
    return 0 if qc.get("checkpoint_format", qc.get("format", "gptq")) == "gptq_v2" else 1


def is_quantizable(name):
    """Every linear layer of a decoder layer (not the embedding, the norms or the lm_head)."""
    return name.startswith("model.layers.") and (name.endswith("_proj.weight") or name.endswith(".o_gate.weight"))


# ------------------------------------------------------------------------------------------------
# Dequantization and RTN quantization
# ------------------------------------------------------------------------------------------------

def dequantize(t, module, in_f, out_f, bits, zoff):
    """W [out, in] as a flat list of floats, row-major."""
    per_word, mask = 32 // bits, (1 << bits) - 1
    qweight = words(t[module + ".qweight"][2])
    qzeros = words(t[module + ".qzeros"][2])
    scales = fp16_values(t[module + ".scales"][2])
    g_idx = words(t[module + ".g_idx"][2])
    zw = out_f // per_word
    w = [0.0] * (out_f * in_f)
    for k in range(in_f):
        g = g_idx[k]
        shift_k = bits * (k % per_word)
        row = (k // per_word) * out_f
        for j in range(out_f):
            q = ((qweight[row + j] & 0xFFFFFFFF) >> shift_k) & mask
            z = ((qzeros[g * zw + j // per_word] & 0xFFFFFFFF) >> (bits * (j % per_word))) & mask
            w[j * in_f + k] = scales[g * out_f + j] * (q - (z + zoff))
    return w


def rtn_quantize(w, out_f, in_f, bits, group_size, sym, desc_act, v2, seed):
    """GPTQ tensors (qweight, qzeros, scales, g_idx) of W by round-to-nearest, group by group."""
    gs = in_f if group_size == -1 else group_size
    groups, per_word, maxq = in_f // gs, 32 // bits, (1 << bits) - 1
    perm = list(range(in_f))
    if desc_act:  # GPTQ numbers the groups in its column order: g_idx[perm[i]] = i // gs
        random.Random(seed).shuffle(perm)
    g_idx = [0] * in_f
    for i, k in enumerate(perm):
        g_idx[k] = i // gs
    qweight = [0] * (in_f // per_word * out_f)
    qzeros = [0] * (groups * (out_f // per_word))
    scales = [0.0] * (groups * out_f)
    for j in range(out_f):
        row = w[j * in_f:(j + 1) * in_f]
        zero_of = [0] * groups
        for g in range(groups):
            members = [row[perm[i]] for i in range(g * gs, (g + 1) * gs)]
            lo, hi = min(0.0, min(members)), max(0.0, max(members))
            if sym:
                m = max(-lo, hi)
                s = 2 * m / maxq if m > 0 else 1.0
                z = (maxq + 1) // 2
            else:
                s = (hi - lo) / maxq if hi > lo else 1.0
                z = int(round(-lo / s))
                z = min(max(z, 0 if v2 else 1), maxq)  # "gptq" stores z - 1, which must not be -1
            s = struct.unpack("<e", struct.pack("<e", s))[0]  # the fp16 scale actually stored
            scales[g * out_f + j] = s
            zero_of[g] = z
            stored = z - (0 if v2 else 1)
            qzeros[g * (out_f // per_word) + j // per_word] |= stored << (bits * (j % per_word))
        for k in range(in_f):
            g = g_idx[k]
            q = min(max(int(round(row[k] / scales[g * out_f + j])) + zero_of[g], 0), maxq)
            qweight[(k // per_word) * out_f + j] |= q << (bits * (k % per_word))

    def signed(v):
        return v - (1 << 32) if v >= 1 << 31 else v
    return {
        "qweight": ("I32", [in_f // per_word, out_f], i32_bytes([signed(v) for v in qweight])),
        "qzeros": ("I32", [groups, out_f // per_word], i32_bytes([signed(v) for v in qzeros])),
        "g_idx": ("I32", [in_f], i32_bytes(g_idx)),
        "scales": ("F16", [groups, out_f], struct.pack("<%de" % len(scales), *scales)),
    }


def load_dequantized(model_dir, qc, round_to_bf16):
    """{weight name: (shape, flat float list)} for every tensor, quantized modules dequantized (to
    fp32, or rounded to bf16 as the engine's bf16 mode and the twin hold them)."""
    t = read_model(model_dir)
    zoff = zero_offset(qc)
    out = {}
    for name, (dtype, shape, raw) in t.items():
        if name.endswith(".qweight"):
            module = name[: -len(".qweight")]
            settings = module_settings(qc, module)
            if settings is None:
                raise ValueError(f"{module} is stored quantized but the dynamic rules leave it in bf16")
            bits = settings["bits"]
            in_f, out_f = shape[0] * (32 // bits), shape[1]
            w = dequantize(t, module, in_f, out_f, bits, zoff)
            out[module + ".weight"] = ([out_f, in_f], [round_bf16(x) for x in w] if round_to_bf16 else w)
        elif name.endswith((".qzeros", ".scales", ".g_idx")):
            continue
        elif dtype == "BF16":
            out[name] = (shape, bf16_values(raw))
        elif dtype == "F32":
            out[name] = (shape, list(struct.unpack("<%df" % (len(raw) // 4), raw)))
        else:
            raise ValueError(f"tensor {name}: unexpected dtype {dtype}")
    return out


# ------------------------------------------------------------------------------------------------
# Whole folders
# ------------------------------------------------------------------------------------------------

def copy_side_files(src, dst):
    os.makedirs(dst, exist_ok=True)
    for f in os.listdir(src):
        if not f.endswith(".safetensors") and f not in ("model.safetensors.index.json", "config.json"):
            shutil.copy(os.path.join(src, f), os.path.join(dst, f))


def quantize_folder(src, dst, bits, group_size, sym, desc_act, v2, dynamic):
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    rules = {}
    if dynamic == "sala":
        rules = {"-:.*self_attn\\.o_gate.*": {}, "-:.*self_attn\\.z_proj.*": {}}
    qc = {"quant_method": "gptq", "bits": bits, "group_size": group_size, "sym": sym, "desc_act": desc_act,
          "checkpoint_format": "gptq_v2" if v2 else "gptq", "pack_dtype": "int32", "lm_head": False,
          "dynamic": rules or None, "meta": {"quantizer": ["tools/reference/gptq.py"], "method": "rtn"}}
    config["quantization_config"] = qc
    copy_side_files(src, dst)
    ints, others = [], []
    for name, (dtype, shape, raw) in sorted(read_model(src).items()):
        settings = module_settings(qc, name[: -len(".weight")]) if is_quantizable(name) else None
        if settings is None:
            others.append((name, dtype, shape, raw))
            continue
        out_f, in_f = shape
        q = rtn_quantize(bf16_values(raw), out_f, in_f, settings["bits"], settings["group_size"], settings["sym"],
                         settings["desc_act"], v2, seed=len(ints) + 1)
        module = name[: -len(".weight")]
        for part in ("qweight", "qzeros", "g_idx"):
            ints.append((f"{module}.{part}",) + q[part])
        others.append((f"{module}.scales",) + q["scales"])
    write_safetensors(os.path.join(dst, "model.safetensors"), ints + others)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def dequantize_folder(src, dst):
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    qc = config.pop("quantization_config")
    copy_side_files(src, dst)
    tensors = []
    for name, (shape, values) in sorted(load_dequantized(src, qc, round_to_bf16=True).items()):
        tensors.append((name, "BF16", shape, bf16_bytes(values)))
    write_safetensors(os.path.join(dst, "model.safetensors"), tensors)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quantize")
    q.add_argument("src")
    q.add_argument("dst")
    q.add_argument("--bits", type=int, choices=(4, 8), required=True)
    q.add_argument("--group-size", type=int, default=128)
    q.add_argument("--asym", action="store_true")
    q.add_argument("--desc-act", action="store_true")
    q.add_argument("--v2", action="store_true")
    q.add_argument("--dynamic", choices=("", "sala"), default="")
    d = sub.add_parser("dequantize")
    d.add_argument("src")
    d.add_argument("dst")
    args = ap.parse_args()
    if args.command == "quantize":
        quantize_folder(args.src, args.dst, args.bits, args.group_size, not args.asym, args.desc_act, args.v2,
                        args.dynamic)
    else:
        dequantize_folder(args.src, args.dst)


if __name__ == "__main__":
    main()
