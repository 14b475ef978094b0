#!/usr/bin/env python3
"""PyTorch peer for bench/embed: the same BERT forward pass Hugging Face's eager BertModel runs
(padded batch + attention mask, F.linear / F.gelu / F.layer_norm), on the same safetensors
weights and the same token ids, fp32 on the CPU with `--threads` intra-op threads.

    torch_peer.py --ids IDS_FILE --threads N --seconds S --batch B MODEL_DIR...

Prints one JSON object per model (sequences_per_s, tokens_per_s), like embed_bench.
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", "the peer reads fp32 files"
        b, e = t["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[b:e], dtype="<f4").reshape(t["shape"]).copy())
    return out


class Bert:
    def __init__(self, d):
        cfg = json.load(open(os.path.join(d, "config.json")))
        self.cfg = cfg
        w = load_safetensors(os.path.join(d, "model.safetensors"))
        prefix = next(p for p in ("", "bert.", "roberta.") if p + "embeddings.word_embeddings.weight" in w)
        self.w = {k[len(prefix):]: v for k, v in w.items() if k.startswith(prefix)}
        pool = json.load(open(os.path.join(d, "1_Pooling", "config.json")))
        self.mean = pool.get("pooling_mode_mean_tokens", False)
        self.eps = cfg.get("layer_norm_eps", 1e-12)
        self.offset = cfg["pad_token_id"] + 1 if cfg["model_type"] == "xlm-roberta" else 0

    def __call__(self, ids, mask):
        w, cfg = self.w, self.cfg
        b, n = ids.shape
        h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
        d = h // heads
        pos = torch.arange(n).unsqueeze(0) + self.offset
        x = (F.embedding(ids, w["embeddings.word_embeddings.weight"]) +
             F.embedding(pos, w["embeddings.position_embeddings.weight"]) +
             w["embeddings.token_type_embeddings.weight"][0])
        x = F.layer_norm(x, (h,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            lin = lambda t, name: F.linear(t, w[p + name + ".weight"], w[p + name + ".bias"])  # noqa
            q = lin(x, "attention.self.query").view(b, n, heads, d).transpose(1, 2)
            k = lin(x, "attention.self.key").view(b, n, heads, d).transpose(1, 2)
            v = lin(x, "attention.self.value").view(b, n, heads, d).transpose(1, 2)
            s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d) + bias
            ctx = torch.matmul(torch.softmax(s, dim=-1), v).transpose(1, 2).reshape(b, n, h)
            x = F.layer_norm(lin(ctx, "attention.output.dense") + x, (h,),
                             w[p + "attention.output.LayerNorm.weight"],
                             w[p + "attention.output.LayerNorm.bias"], self.eps)
            a = F.gelu(lin(x, "intermediate.dense"))
            x = F.layer_norm(lin(a, "output.dense") + x, (h,), w[p + "output.LayerNorm.weight"],
                             w[p + "output.LayerNorm.bias"], self.eps)
        if self.mean:
            m = mask.unsqueeze(-1).float()
            return (x * m).sum(1) / m.sum(1)
        return x[:, 0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ids", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("models", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seqs = [json.loads(line) for line in open(args.ids)]

    def make(first):
        rows = [seqs[(first + i) % len(seqs)] for i in range(args.batch)]
        n = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), n, dtype=torch.long)
        mask = torch.zeros(len(rows), n, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
            mask[i, :len(r)] = 1
        return ids, mask, sum(len(r) for r in rows)

    for d in args.models:
        model = Bert(d)
        with torch.inference_mode():
            ids, mask, _ = make(0)
            model(ids, mask)
            done = tokens = nxt = 0
            start = time.perf_counter()
            cpu_start = time.process_time()
            while time.perf_counter() - start < args.seconds:
                ids, mask, t = make(nxt)
                model(ids, mask)
                done += args.batch
                tokens += t
                nxt += args.batch
            el = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
        print(json.dumps({"kind": "model", "peer": "pytorch " + torch.__version__, "model": d,
                          "threads": args.threads, "batch": args.batch,
                          "sequences_per_s": round(done / el, 1), "tokens_per_s": round(tokens / el),
                          "tokens_per_cpu_s": round(tokens / cpu)}))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
