#!/usr/bin/python3
"""PyTorch peer of Atrium's embedding benchmark (bench/embed/peers/run drives it).

Builds BERT as torch.nn modules named like Hugging Face's BertModel (embeddings, N layers of
self-attention + FFN with exact erf GELU, post-LayerNorm), loads the model directory's fp32
model.safetensors into them (parsed with NumPy: 8-byte header length, JSON header, raw data),
and pools like the model's 1_Pooling/config.json (mean or CLS). Runs on Debian's python3-torch.

    torch_bench.py MODEL_DIR INPUTS.json [--check ATRIUM.f32] [--export MODEL.onnx]
                   [--bench] [--threads 2] [--min-seconds 10] [--single-iters 200]

--check    embeds the first batch and compares with Atrium's vectors (batch × hidden float32):
           exits 1 when a cosine similarity is below --min-cosine (0.9999).
--export   writes the same module as ONNX (inputs input_ids and attention_mask int64 [batch,
           sequence], output embedding [batch, hidden]; dynamic batch and sequence axes), in the
           form ONNX Runtime's online optimizer fuses (opset 12, constant-shape Reshapes, MatMul
           then bias Add): the session runs com.microsoft Attention and BiasGelu kernels.
--bench    times the batches of INPUTS.json the way PyTorch users run them: each batch padded to
           its longest sequence with an attention mask, torch.inference_mode(), `--threads`
           intra-op threads (OpenMP and OpenBLAS, OMP_WAIT_POLICY=PASSIVE unless set); then the
           single short request. Prints one JSON object like
           atrium_embed_bench (tokens_per_s counts real tokens; padded_tokens_per_s the padded
           tensor the engine computes).
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model_dir")
    p.add_argument("inputs")
    p.add_argument("--check")
    p.add_argument("--min-cosine", type=float, default=0.9999)
    p.add_argument("--export")
    p.add_argument("--bench", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-seconds", type=float, default=10)
    p.add_argument("--single-iters", type=int, default=200)
    return p.parse_args()


ARGS = parse_args()
# OpenBLAS (Debian torch's BLAS, the pthreads build) and OpenMP read these when the libraries
# load. PASSIVE: OpenMP's workers sleep after a parallel region instead of spinning on the cores
# that OpenBLAS's own threads need for the next GEMM; with GCC's default (spin a while) this torch
# runs about 3× slower on 2 cores, so the benchmark measures the better setting.
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
from torch import nn  # noqa: E402


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {t['dtype']}; the peer benchmark reads fp32 weights")
        b, e = t["data_offsets"]
        a = np.frombuffer(data, dtype="<f4", count=(e - b) // 4, offset=b).reshape(t["shape"])
        out[name] = torch.from_numpy(a.copy())
    return out


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.word_embeddings = nn.Embedding(c["vocab_size"], h)
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], h)
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], h)
        self.LayerNorm = nn.LayerNorm(h, eps=c["layer_norm_eps"])

    def forward(self, input_ids):
        positions = torch.arange(input_ids.size(1), device=input_ids.device).unsqueeze(0)
        types = torch.zeros_like(input_ids)
        x = (self.word_embeddings(input_ids) + self.position_embeddings(positions) +
             self.token_type_embeddings(types))
        return self.LayerNorm(x)


class _Reshape(torch.autograd.Function):
    """view() whose ONNX export is a Reshape with a constant shape (0 = keep that dimension), the
    form ONNX Runtime's online Attention fusion matches; the traced view() would compute the shape
    from Shape/Gather/Concat nodes instead."""

    @staticmethod
    def forward(ctx, x, shape):
        return x.reshape([x.size(i) if d == 0 else d for i, d in enumerate(shape)])

    @staticmethod
    def symbolic(g, x, shape):
        return g.op("Reshape", x, g.op("Constant", value_t=torch.tensor(shape, dtype=torch.int64)))


EXPORTING = False


def reshape(x, shape):
    """x viewed as `shape` (0 = keep x's dimension)."""
    if EXPORTING:
        return _Reshape.apply(x, tuple(shape))
    return x.view([x.size(i) if d == 0 else d for i, d in enumerate(shape)])


class Linear(nn.Linear):
    """nn.Linear whose ONNX export is MatMul then Add(product, bias): the operand order ONNX
    Runtime's online Attention / SkipLayerNorm / BiasGelu fusions match (the exporter's F.linear
    writes Add(bias, product))."""

    def forward(self, x):
        if EXPORTING:
            return torch.matmul(x, self.weight.t()) + self.bias
        return super().forward(x)


class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.heads = c["num_attention_heads"]
        self.head_dim = h // self.heads
        self.query = Linear(h, h)
        self.key = Linear(h, h)
        self.value = Linear(h, h)

    def split(self, t):
        return reshape(t, (0, 0, self.heads, self.head_dim)).permute(0, 2, 1, 3)

    def forward(self, x, mask_bias):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + mask_bias
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v).permute(0, 2, 1, 3).contiguous()
        return reshape(ctx, (0, 0, self.heads * self.head_dim))


class DenseNorm(nn.Module):
    """dense → + residual → LayerNorm (BertSelfOutput / BertOutput)."""

    def __init__(self, c, d_in):
        super().__init__()
        self.dense = Linear(d_in, c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        setattr(self, "self", SelfAttention(c))  # Hugging Face's tensor names: attention.self.*
        self.output = DenseNorm(c, c["hidden_size"])

    def forward(self, x, mask_bias):
        return self.output(getattr(self, "self")(x, mask_bias), x)


class Intermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = Linear(c["hidden_size"], c["intermediate_size"])
        self.act = nn.GELU()  # exact (erf) GELU, config hidden_act "gelu"

    def forward(self, x):
        return self.act(self.dense(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = DenseNorm(c, c["intermediate_size"])

    def forward(self, x, mask_bias):
        x = self.attention(x, mask_bias)
        return self.output(self.intermediate(x), x)


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))


class Bert(nn.Module):
    """input_ids, attention_mask [batch, sequence] int64 → pooled embedding [batch, hidden]."""

    def __init__(self, c, mean_pooling):
        super().__init__()
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)
        self.mean_pooling = mean_pooling

    def forward(self, input_ids, attention_mask):
        x = self.embeddings(input_ids)
        # Hugging Face BERT's additive mask (-10000 for padding, as in transformers < 4.21).
        mask_bias = (1.0 - attention_mask.unsqueeze(1).unsqueeze(2).to(x.dtype)) * -10000.0
        for layer in self.encoder.layer:
            x = layer(x, mask_bias)
        if self.mean_pooling:
            m = attention_mask.unsqueeze(-1).to(x.dtype)
            return (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return x[:, 0]


def load_model(d):
    config = json.load(open(os.path.join(d, "config.json")))
    if config.get("model_type") != "bert" or config.get("hidden_act", "gelu") != "gelu":
        sys.exit(f"{d}: the peer benchmark implements BERT with exact GELU only")
    config.setdefault("layer_norm_eps", 1e-12)
    pooling_path = os.path.join(d, "1_Pooling", "config.json")
    mean = os.path.exists(pooling_path) and json.load(open(pooling_path)).get(
        "pooling_mode_mean_tokens", False)
    weights = load_safetensors(os.path.join(d, "model.safetensors"))
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
    state = {k[len(prefix):]: v for k, v in weights.items()
             if k.startswith(prefix) and not k[len(prefix):].startswith("pooler.")}
    model = Bert(config, mean)
    model.load_state_dict(state, strict=True)
    return model.eval()


def padded(batch):
    n = max(len(s) for s in batch)
    ids = torch.zeros((len(batch), n), dtype=torch.int64)
    mask = torch.zeros((len(batch), n), dtype=torch.int64)
    for i, s in enumerate(batch):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.int64)
        mask[i, :len(s)] = 1
    return ids, mask


def percentile(sorted_values, p):
    rank = max(1, min(len(sorted_values), math.ceil(p / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def check(model, inputs, path):
    ids, mask = padded(inputs["batches"][0])
    with torch.inference_mode():
        ours = model(ids, mask).double().numpy()
    ref = np.fromfile(path, dtype="<f4").astype(np.float64).reshape(ours.shape)
    cos = (ours * ref).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    worst = float(cos.min())
    ok = worst >= ARGS.min_cosine
    print(f"torch check: min cosine vs atrium {worst:.7f} over {len(cos)} sequences "
          f"({'ok' if ok else 'BELOW ' + str(ARGS.min_cosine)})", file=sys.stderr)
    return ok


def export(model, inputs, path):
    global EXPORTING
    ids, mask = padded(inputs["batches"][0])
    EXPORTING = True
    with torch.no_grad():
        # Opset 12: ONNX Runtime's online fusions (LayerNorm, Attention, SkipLayerNorm, BiasGelu)
        # match the operator versions of this opset, as in Hugging Face's classic BERT exports.
        # torch.onnx.export's own shape inference rejects Reshape shapes with 0 and no -1 (an
        # assertion in torch 1.13), so it is off (the internal entry point takes the flag); ONNX
        # Runtime infers the shapes itself when it loads the model.
        torch.onnx.utils._export(model, (ids, mask), path, onnx_shape_inference=False,
                          input_names=["input_ids", "attention_mask"],
                          output_names=["embedding"], opset_version=12,
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                        "attention_mask": {0: "batch", 1: "sequence"},
                                        "embedding": {0: "batch"}})
    EXPORTING = False
    print(f"torch export: {path} ({os.path.getsize(path) / 2**20:.0f} MiB)", file=sys.stderr)


def bench(model, inputs):
    torch.set_num_threads(ARGS.threads)
    batches = [padded(b) for b in inputs["batches"]]
    tokens = sum(len(s) for b in inputs["batches"] for s in b)
    padded_tokens = sum(ids.numel() for ids, _ in batches)
    sequences = sum(len(b) for b in inputs["batches"])
    latencies, passes = [], 0
    with torch.inference_mode():
        for ids, mask in batches[:2]:
            model(ids, mask)
        start = time.perf_counter()
        while True:
            for ids, mask in batches:
                t0 = time.perf_counter()
                model(ids, mask)
                latencies.append(time.perf_counter() - t0)
            passes += 1
            if time.perf_counter() - start >= ARGS.min_seconds:
                break
        elapsed = time.perf_counter() - start
        one = torch.tensor([inputs["single"]], dtype=torch.int64)
        one_mask = torch.ones_like(one)
        single = []
        for i in range(10 + ARGS.single_iters):
            t0 = time.perf_counter()
            model(one, one_mask)
            if i >= 10:
                single.append(time.perf_counter() - t0)
    latencies.sort()
    single.sort()
    print(json.dumps({
        "engine": "pytorch", "version": torch.__version__, "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
        "batch": inputs["batch_size"], "batches": len(batches), "passes": passes,
        "seconds": elapsed, "sequences_per_s": sequences * passes / elapsed,
        "tokens_per_s": tokens * passes / elapsed,
        "padded_tokens_per_s": padded_tokens * passes / elapsed,
        "batch_p50_ms": percentile(latencies, 50) * 1e3,
        "batch_p99_ms": percentile(latencies, 99) * 1e3,
        "single_tokens": len(inputs["single"]),
        "single_p50_ms": percentile(single, 50) * 1e3,
        "single_p99_ms": percentile(single, 99) * 1e3}), flush=True)


def main():
    inputs = json.load(open(ARGS.inputs))
    model = load_model(ARGS.model_dir)
    ok = True
    if ARGS.check:
        ok = check(model, inputs, ARGS.check)
    if ARGS.export:
        export(model, inputs, ARGS.export)
    if ARGS.bench:
        bench(model, inputs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
