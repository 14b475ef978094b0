#!/usr/bin/env python3
"""Test models and reference embeddings for the CPU encoder (libs/infer).

Generates randomly initialised models with real shapes in the Hugging Face directory layout and
computes reference embeddings with a float64 NumPy forward pass of BERT / XLM-RoBERTa written
here from the same safetensors weights (after the same fp16/bf16 rounding the files carry).

    embed_reference.py OUT_DIR [--data-dir ../shared/data] [--bench]

writes OUT_DIR/<model>/ (config.json, model.safetensors or shards, tokenizer.json, modules.json,
1_Pooling/config.json, sentence_bert_config.json, config_sentence_transformers.json) and
OUT_DIR/cases.json; every case names a model directory, a pooling, the token ids (and type ids)
of a batch and a file of float32 little-endian expected vectors (batch × hidden).
With --bench only the MiniLM-L6 and BERT-base shaped models are written, without references.
Needs only Python 3 and NumPy (Debian python3-numpy).
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys

import numpy as np

MODELS = {
    # name: (config, tensor prefix, dtype variants)
    "minilm": dict(model_type="bert", hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                   intermediate_size=1536, vocab_size=30522, max_position_embeddings=512,
                   type_vocab_size=2, pad_token_id=0, prefix="", pooling="mean"),
    "bert-base": dict(model_type="bert", hidden_size=768, num_hidden_layers=12,
                      num_attention_heads=12, intermediate_size=3072, vocab_size=30522,
                      max_position_embeddings=512, type_vocab_size=2, pad_token_id=0,
                      prefix="bert.", pooling="cls"),
    "xlmr-small": dict(model_type="xlm-roberta", hidden_size=256, num_hidden_layers=2,
                       num_attention_heads=4, intermediate_size=1024, vocab_size=30522,
                       max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                       prefix="roberta.", pooling="mean"),
}


# ------------------------------------------------------------------------------------------
# Weights


def random_weights(cfg, seed):
    rng = np.random.default_rng(seed)
    h, inter = cfg["hidden_size"], cfg["intermediate_size"]
    p = cfg["prefix"]

    def normal(shape, std):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)

    w = {}
    w[p + "embeddings.word_embeddings.weight"] = normal((cfg["vocab_size"], h), 0.5)
    w[p + "embeddings.position_embeddings.weight"] = normal((cfg["max_position_embeddings"], h), 0.5)
    w[p + "embeddings.token_type_embeddings.weight"] = normal((cfg["type_vocab_size"], h), 0.5)
    w[p + "embeddings.LayerNorm.weight"] = 1 + normal((h,), 0.1)
    w[p + "embeddings.LayerNorm.bias"] = normal((h,), 0.1)
    # Larger query/key weights than BERT's 0.02 init make attention far from uniform, so a wrong
    # mask or position shows up in the embeddings.
    for i in range(cfg["num_hidden_layers"]):
        b = f"{p}encoder.layer.{i}."
        for part, std in (("query", 0.12), ("key", 0.12), ("value", 0.05)):
            w[b + f"attention.self.{part}.weight"] = normal((h, h), std)
            w[b + f"attention.self.{part}.bias"] = normal((h,), 0.1)
        w[b + "attention.output.dense.weight"] = normal((h, h), 0.05)
        w[b + "attention.output.dense.bias"] = normal((h,), 0.05)
        w[b + "attention.output.LayerNorm.weight"] = 1 + normal((h,), 0.1)
        w[b + "attention.output.LayerNorm.bias"] = normal((h,), 0.1)
        w[b + "intermediate.dense.weight"] = normal((inter, h), 0.05)
        w[b + "intermediate.dense.bias"] = normal((inter,), 0.1)
        w[b + "output.dense.weight"] = normal((h, inter), 0.03)
        w[b + "output.dense.bias"] = normal((h,), 0.05)
        w[b + "output.LayerNorm.weight"] = 1 + normal((h,), 0.1)
        w[b + "output.LayerNorm.bias"] = normal((h,), 0.1)
    w[p + "pooler.dense.weight"] = normal((h, h), 0.02)  # present in real exports, unused
    w[p + "pooler.dense.bias"] = normal((h,), 0.02)
    return w


def to_bf16_bits(a):
    bits = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def rounded(weights, dtype):
    """The fp32 values a file of `dtype` holds."""
    if dtype == "F32":
        return weights
    if dtype == "F16":
        return {k: v.astype(np.float16).astype(np.float32) for k, v in weights.items()}
    return {k: (to_bf16_bits(v).astype(np.uint32) << 16).view(np.float32)
            for k, v in weights.items()}


def encode_tensor(a, dtype):
    if dtype == "F32":
        return a.astype("<f4").tobytes()
    if dtype == "F16":
        return a.astype("<f2").tobytes()
    return to_bf16_bits(a).astype("<u2").tobytes()


def write_safetensors(path, weights, dtype):
    header, blobs, offset = {}, [], 0
    for name in sorted(weights):
        data = encode_tensor(weights[name], dtype)
        header[name] = {"dtype": dtype, "shape": list(weights[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def write_model(out, name, cfg, weights, dtype, data_dir, sharded=False):
    d = os.path.join(out, name)
    os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
    config = {k: v for k, v in cfg.items() if k not in ("prefix", "pooling")}
    config.update(hidden_act="gelu", layer_norm_eps=1e-12 if cfg["model_type"] == "bert" else 1e-5,
                  position_embedding_type="absolute", architectures=["XLMRobertaModel"
                  if cfg["model_type"] == "xlm-roberta" else "BertModel"])
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    shutil.copy(os.path.join(data_dir, "minilm-tokenizer", "tokenizer.json"), d)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize"}]
    with open(os.path.join(d, "modules.json"), "w") as f:
        json.dump(modules, f, indent=2)
    pooling = {"word_embedding_dimension": cfg["hidden_size"],
               "pooling_mode_cls_token": cfg["pooling"] == "cls",
               "pooling_mode_mean_tokens": cfg["pooling"] == "mean",
               "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False,
               "pooling_mode_weightedmean_tokens": False, "pooling_mode_lasttoken": False,
               "include_prompt": True}
    with open(os.path.join(d, "1_Pooling", "config.json"), "w") as f:
        json.dump(pooling, f, indent=2)
    with open(os.path.join(d, "sentence_bert_config.json"), "w") as f:
        json.dump({"max_seq_length": 512, "do_lower_case": False}, f)
    with open(os.path.join(d, "config_sentence_transformers.json"), "w") as f:
        json.dump({"prompts": {"query": "query: ", "passage": "passage: "},
                   "default_prompt_name": None, "similarity_fn_name": "cosine"}, f)
    if not sharded:
        write_safetensors(os.path.join(d, "model.safetensors"), weights, dtype)
        return d
    names = sorted(weights)
    half = len(names) // 2
    shards = [names[:half], names[half:]]
    weight_map = {}
    for i, part in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(os.path.join(d, fname), {k: weights[k] for k in part}, dtype)
        weight_map.update({k: fname for k in part})
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=2)
    return d


# ------------------------------------------------------------------------------------------
# Reference forward pass (float64)


def erf(x):
    """erf to ~1e-7 relative (Numerical Recipes erfcc), vectorised."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    r = t * np.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (
        0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (
            1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
    return np.where(x >= 0, 1.0 - r, r - 1.0)


def layer_norm(x, g, b, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * g + b


def forward(cfg, w32, ids, type_ids):
    """Last hidden states [len × hidden] of one sequence."""
    w = lambda n: w32[cfg["prefix"] + n].astype(np.float64)  # noqa: E731
    h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    d = h // heads
    eps = 1e-12 if cfg["model_type"] == "bert" else 1e-5
    offset = cfg["pad_token_id"] + 1 if cfg["model_type"] == "xlm-roberta" else 0
    n = len(ids)
    x = (w("embeddings.word_embeddings.weight")[ids] +
         w("embeddings.position_embeddings.weight")[np.arange(n) + offset] +
         w("embeddings.token_type_embeddings.weight")[type_ids])
    x = layer_norm(x, w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"), eps)
    for i in range(cfg["num_hidden_layers"]):
        b = f"encoder.layer.{i}."

        def lin(t, name):
            return t @ w(b + name + ".weight").T + w(b + name + ".bias")

        q = lin(x, "attention.self.query").reshape(n, heads, d).transpose(1, 0, 2)
        k = lin(x, "attention.self.key").reshape(n, heads, d).transpose(1, 0, 2)
        v = lin(x, "attention.self.value").reshape(n, heads, d).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, h)
        x = layer_norm(lin(ctx, "attention.output.dense") + x,
                       w(b + "attention.output.LayerNorm.weight"),
                       w(b + "attention.output.LayerNorm.bias"), eps)
        a = lin(x, "intermediate.dense")
        a = 0.5 * a * (1.0 + erf(a / math.sqrt(2.0)))
        x = layer_norm(lin(a, "output.dense") + x, w(b + "output.LayerNorm.weight"),
                       w(b + "output.LayerNorm.bias"), eps)
    return x


def pool(hidden, pooling):
    if pooling == "mean":
        return hidden.mean(axis=0)
    if pooling == "cls":
        return hidden[0]
    if pooling == "max":
        return hidden.max(axis=0)
    return hidden[-1]


# ------------------------------------------------------------------------------------------


def make_batch(cfg, lengths, seed, with_types):
    rng = np.random.default_rng(seed)
    ids, types = [], []
    for n in lengths:
        seq = rng.integers(999, cfg["vocab_size"], size=n)
        seq[0] = 101
        if n > 1:
            seq[-1] = 102
        t = np.zeros(n, dtype=np.int64)
        if with_types and n > 4:
            t[n // 2:] = 1
        ids.append(seq)
        types.append(t)
    return ids, types


def add_cases(out, cases, model_dir, cfg, weights, ids, types, poolings, tag):
    hidden = [forward(cfg, weights, s, t) for s, t in zip(ids, types)]
    for pooling in poolings:
        vecs = np.stack([pool(hs, pooling) for hs in hidden]).astype("<f4")
        fname = f"{tag}-{pooling}.f32"
        vecs.tofile(os.path.join(out, fname))
        cases.append({"name": f"{tag}/{pooling}", "model": os.path.basename(model_dir),
                      "pooling": pooling, "hidden": cfg["hidden_size"],
                      "ids": [s.tolist() for s in ids], "type_ids": [t.tolist() for t in types],
                      "expected": fname})


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--data-dir", default=os.path.join(here, "..", "..", "..", "..",
                                                           "shared", "data"))
    parser.add_argument("--bench", action="store_true",
                        help="only write the MiniLM-L6 and BERT-base models, no references")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    if args.bench:
        for name, seed in (("minilm", 1), ("bert-base", 2)):
            cfg = MODELS[name]
            write_model(out, name, cfg, random_weights(cfg, seed), "F32", args.data_dir)
        return 0

    cases = []
    # MiniLM-L6: fp32 with every pooling over lengths 1…512, then fp16, bf16 and sharded files.
    cfg = MODELS["minilm"]
    w = random_weights(cfg, 1)
    ids, types = make_batch(cfg, [1, 7, 64, 200, 512, 3], 11, with_types=True)
    d = write_model(out, "minilm-f32", cfg, w, "F32", args.data_dir)
    add_cases(out, cases, d, cfg, w, ids, types, ["mean", "cls", "max", "last_token"], "minilm-f32")
    short_ids, short_types = make_batch(cfg, [2, 16, 130, 33], 12, with_types=False)
    for dtype in ("F16", "BF16"):
        name = f"minilm-{dtype.lower()}"
        d = write_model(out, name, cfg, w, dtype, args.data_dir)
        add_cases(out, cases, d, cfg, rounded(w, dtype), short_ids, short_types, ["mean"], name)
    d = write_model(out, "minilm-sharded", cfg, w, "F32", args.data_dir, sharded=True)
    add_cases(out, cases, d, cfg, w, short_ids, short_types, ["mean", "cls"], "minilm-sharded")

    # BERT-base: few sequences (the NumPy reference is the slow part).
    cfg = MODELS["bert-base"]
    w = random_weights(cfg, 2)
    d = write_model(out, "bert-base", cfg, w, "F32", args.data_dir)
    ids, types = make_batch(cfg, [512, 1, 45], 21, with_types=True)
    add_cases(out, cases, d, cfg, w, ids, types, ["cls", "mean"], "bert-base")
    del w

    # XLM-RoBERTa-shaped: position ids start at pad_token_id + 1, one token type.
    cfg = MODELS["xlmr-small"]
    w = random_weights(cfg, 3)
    d = write_model(out, "xlmr-small", cfg, w, "F32", args.data_dir)
    ids, types = make_batch(cfg, [5, 512, 1, 77], 31, with_types=False)
    add_cases(out, cases, d, cfg, w, ids, types, ["mean", "max"], "xlmr-small")

    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump({"cases": cases}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
