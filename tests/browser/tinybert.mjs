// Writes a tiny BERT sentence-embedding model with random weights in the Hugging Face layout
// (config.json, vocab.txt, model.safetensors in F32, modules.json with Normalize, mean pooling),
// the same shape as apps/atrium/test/embed_serve_test.cc's, so `atrium serve` can load it with
// embed.models=tiny=<dir> and the embed playground has a model to use.
import fs from "node:fs";
import path from "node:path";

const HIDDEN = 32, LAYERS = 2, INTERMEDIATE = 64, POSITIONS = 64;

// Deterministic normal-ish numbers (xorshift + Box-Muller).
function rng(seed) {
  let s = seed >>> 0 || 1;
  const u = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

export function writeTinyBert(dir) {
  fs.mkdirSync(path.join(dir, "1_Pooling"), { recursive: true });
  const vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "man", "is", "playing", "flute", "the", "cat", "sat", "on",
    "mat", "dog", "runs", "fast", "slow", "red", "blue", ".", ",", "##s", "big", "plays", "hello", "world"];
  fs.writeFileSync(path.join(dir, "vocab.txt"), vocab.join("\n") + "\n");
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({
    architectures: ["BertModel"], model_type: "bert", hidden_size: HIDDEN, num_hidden_layers: LAYERS,
    num_attention_heads: 4, intermediate_size: INTERMEDIATE, vocab_size: vocab.length, max_position_embeddings: POSITIONS,
    type_vocab_size: 2, layer_norm_eps: 1e-12, hidden_act: "gelu", pad_token_id: 0,
  }));
  fs.writeFileSync(path.join(dir, "modules.json"), JSON.stringify([
    { idx: 0, name: "0", path: "", type: "sentence_transformers.models.Transformer" },
    { idx: 1, name: "1", path: "1_Pooling", type: "sentence_transformers.models.Pooling" },
    { idx: 2, name: "2", path: "2_Normalize", type: "sentence_transformers.models.Normalize" },
  ]));
  fs.writeFileSync(path.join(dir, "1_Pooling", "config.json"), JSON.stringify({
    word_embedding_dimension: HIDDEN, pooling_mode_cls_token: false, pooling_mode_mean_tokens: true, pooling_mode_max_tokens: false,
  }));
  const h = HIDDEN;
  const shapes = new Map();
  shapes.set("embeddings.word_embeddings.weight", [vocab.length, h]);
  shapes.set("embeddings.position_embeddings.weight", [POSITIONS, h]);
  shapes.set("embeddings.token_type_embeddings.weight", [2, h]);
  shapes.set("embeddings.LayerNorm.weight", [h]);
  shapes.set("embeddings.LayerNorm.bias", [h]);
  for (let l = 0; l < LAYERS; l++) {
    const p = `encoder.layer.${l}.`;
    for (const m of ["query", "key", "value"]) {
      shapes.set(`${p}attention.self.${m}.weight`, [h, h]);
      shapes.set(`${p}attention.self.${m}.bias`, [h]);
    }
    shapes.set(`${p}attention.output.dense.weight`, [h, h]);
    shapes.set(`${p}attention.output.dense.bias`, [h]);
    shapes.set(`${p}attention.output.LayerNorm.weight`, [h]);
    shapes.set(`${p}attention.output.LayerNorm.bias`, [h]);
    shapes.set(`${p}intermediate.dense.weight`, [INTERMEDIATE, h]);
    shapes.set(`${p}intermediate.dense.bias`, [INTERMEDIATE]);
    shapes.set(`${p}output.dense.weight`, [h, INTERMEDIATE]);
    shapes.set(`${p}output.dense.bias`, [h]);
    shapes.set(`${p}output.LayerNorm.weight`, [h]);
    shapes.set(`${p}output.LayerNorm.bias`, [h]);
  }
  const normal = rng(42);
  const header = {};
  const chunks = [];
  let offset = 0;
  for (const [name, shape] of [...shapes.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const ln = name.includes("LayerNorm.weight");
    for (let i = 0; i < n; i++) data[i] = ln ? 1 + normal() * 0.02 : normal() * 0.2;
    const bytes = Buffer.from(data.buffer);
    header[name] = { dtype: "F32", shape, data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
    chunks.push(bytes);
  }
  let hdr = JSON.stringify(header);
  while (hdr.length % 8 !== 0) hdr += " ";
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(hdr)));
  fs.writeFileSync(path.join(dir, "model.safetensors"), Buffer.concat([len, Buffer.from(hdr), ...chunks]));
}
