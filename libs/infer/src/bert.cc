// The BERT encoder on the CPU engine, fp32.
//
// Tokens of all sequences are packed into one matrix [total × hidden]: the Q/K/V, output and
// feed-forward projections run as one GEMM over every token of the batch; attention runs per
// (sequence, head) on that sequence's own rows, so no work is spent on padding and no mask is
// needed. The query projection is pre-scaled by 1/√head_dim at load.
#include "bert.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/gemm.h"
#include "cpu/thread_pool.h"
#include "cpu/vector_math.h"

namespace atrium::infer {
namespace {

using cpu::AlignedFloats;
using cpu::PackedWeight;

struct LayerNormWeights {
  std::vector<float> gamma;
  std::vector<float> beta;
};

struct BertLayer {
  PackedWeight qkv;  // [3H × H]: query (scaled), key, value
  PackedWeight attention_out;
  LayerNormWeights attention_norm;
  PackedWeight intermediate;
  PackedWeight output;
  LayerNormWeights output_norm;
};

// Resolves tensor names under the variant's prefix and reads them.
class TensorReader {
 public:
  TensorReader(const WeightStore& weights, std::string prefix)
      : weights_(weights), prefix_(std::move(prefix)) {}

  Result<std::vector<float>> Read(const std::string& name, std::vector<int64_t> shape) const {
    return weights_.ReadFloat32(prefix_ + name, shape);
  }

  Result<LayerNormWeights> ReadLayerNorm(const std::string& base, int64_t n) const {
    LayerNormWeights ln;
    const bool legacy = !weights_.Contains(prefix_ + base + ".weight") &&
                        weights_.Contains(prefix_ + base + ".gamma");
    ASSIGN_OR_RETURN(ln.gamma, Read(base + (legacy ? ".gamma" : ".weight"), {n}));
    ASSIGN_OR_RETURN(ln.beta, Read(base + (legacy ? ".beta" : ".bias"), {n}));
    return ln;
  }

  Result<PackedWeight> ReadLinear(const std::string& base, int64_t out, int64_t in,
                                  cpu::WeightArena* arena) const {
    ASSIGN_OR_RETURN(std::vector<float> w, Read(base + ".weight", {out, in}));
    ASSIGN_OR_RETURN(std::vector<float> b, Read(base + ".bias", {out}));
    return cpu::PackWeight(w.data(), static_cast<int>(out), static_cast<int>(in), std::move(b),
                           arena);
  }

 private:
  const WeightStore& weights_;
  std::string prefix_;
};

// Attention scratch of the calling thread, grown on demand.
float* AttentionScratch(size_t floats) {
  thread_local AlignedFloats buffer;
  thread_local size_t capacity = 0;
  if (capacity < floats) {
    buffer = cpu::AllocateFloats(floats);
    capacity = floats;
  }
  return buffer.get();
}

// Activations of one forward pass on the calling thread. Kept between calls (no page faults for
// fresh buffers on every batch) up to kKeptWorkspaceFloats; a larger batch gets a buffer of its
// own that is released when the next call needs less.
constexpr size_t kKeptWorkspaceFloats = size_t{32} << 20;  // 128 MiB

float* Workspace(size_t floats) {
  thread_local AlignedFloats buffer;
  thread_local size_t capacity = 0;
  if (capacity < floats || (capacity > kKeptWorkspaceFloats && floats <= kKeptWorkspaceFloats)) {
    buffer.reset();
    buffer = cpu::AllocateFloats(floats);
    capacity = floats;
  }
  return buffer.get();
}

class BertEncoder final : public Encoder {
 public:
  BertEncoder(const EncoderConfig& config, int position_offset)
      : config_(config), position_offset_(position_offset) {}

  Status LoadWeights(const WeightStore& weights, const std::vector<std::string>& prefixes);

  size_t max_tokens() const override {
    return static_cast<size_t>(std::max(0, config_.max_position_embeddings - position_offset_));
  }

  void Forward(const PackedTokens& tokens, cpu::ThreadPool& pool,
               std::span<float> hidden) const override;

 private:
  void Embed(const PackedTokens& tokens, cpu::ThreadPool& pool, float* x) const;
  void Attention(const PackedTokens& tokens, cpu::ThreadPool& pool, const float* qkv,
                 float* context) const;

  EncoderConfig config_;
  int position_offset_;
  std::vector<float> word_embeddings_;
  std::vector<float> position_embeddings_;
  std::vector<float> token_type_embeddings_;
  LayerNormWeights embedding_norm_;
  std::unique_ptr<cpu::WeightArena> arena_;  // the layers' packed weights
  std::vector<BertLayer> layers_;
};

Status BertEncoder::LoadWeights(const WeightStore& weights,
                                const std::vector<std::string>& prefixes) {
  std::string prefix;
  bool found = false;
  for (const std::string& p : prefixes) {
    if (weights.Contains(p + "embeddings.word_embeddings.weight")) {
      prefix = p;
      found = true;
      break;
    }
  }
  if (!found) {
    std::string tried;
    for (const std::string& p : prefixes) tried += (tried.empty() ? "\"" : ", \"") + p + "\"";
    return NotFound("tensor \"embeddings.word_embeddings.weight\" is missing (tried prefixes " +
                    tried + ")");
  }
  TensorReader r(weights, prefix);
  const int64_t h = config_.hidden_size;
  const int64_t inter = config_.intermediate_size;
  ASSIGN_OR_RETURN(word_embeddings_,
                   r.Read("embeddings.word_embeddings.weight", {config_.vocab_size, h}));
  ASSIGN_OR_RETURN(position_embeddings_, r.Read("embeddings.position_embeddings.weight",
                                                {config_.max_position_embeddings, h}));
  if (config_.type_vocab_size > 0) {
    ASSIGN_OR_RETURN(token_type_embeddings_, r.Read("embeddings.token_type_embeddings.weight",
                                                    {config_.type_vocab_size, h}));
  }
  ASSIGN_OR_RETURN(embedding_norm_, r.ReadLayerNorm("embeddings.LayerNorm", h));

  const int head_dim = config_.hidden_size / config_.num_attention_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  layers_.resize(static_cast<size_t>(config_.num_hidden_layers));
  // Every layer's packed weights in one huge-page block (+16 floats each for alignment).
  const int hi = static_cast<int>(h), ii = static_cast<int>(inter);
  const size_t per_layer = cpu::PackedBSize(hi, 3 * hi) + cpu::PackedBSize(hi, hi) +
                           cpu::PackedBSize(hi, ii) + cpu::PackedBSize(ii, hi) + 4 * 16;
  arena_ = std::make_unique<cpu::WeightArena>(per_layer * layers_.size());
  for (int i = 0; i < config_.num_hidden_layers; ++i) {
    const std::string base = "encoder.layer." + std::to_string(i) + ".";
    BertLayer& layer = layers_[static_cast<size_t>(i)];
    std::vector<float> qkv_w(static_cast<size_t>(3 * h * h));
    std::vector<float> qkv_b(static_cast<size_t>(3 * h));
    const char* kParts[] = {"query", "key", "value"};
    for (int part = 0; part < 3; ++part) {
      const std::string name = base + "attention.self." + kParts[part];
      ASSIGN_OR_RETURN(std::vector<float> w, r.Read(name + ".weight", {h, h}));
      ASSIGN_OR_RETURN(std::vector<float> b, r.Read(name + ".bias", {h}));
      const float s = part == 0 ? scale : 1.0f;
      for (size_t j = 0; j < w.size(); ++j) qkv_w[static_cast<size_t>(part * h * h) + j] = w[j] * s;
      for (size_t j = 0; j < b.size(); ++j) qkv_b[static_cast<size_t>(part * h) + j] = b[j] * s;
    }
    layer.qkv = cpu::PackWeight(qkv_w.data(), static_cast<int>(3 * h), static_cast<int>(h),
                                std::move(qkv_b), arena_.get());
    ASSIGN_OR_RETURN(layer.attention_out,
                     r.ReadLinear(base + "attention.output.dense", h, h, arena_.get()));
    ASSIGN_OR_RETURN(layer.attention_norm, r.ReadLayerNorm(base + "attention.output.LayerNorm", h));
    ASSIGN_OR_RETURN(layer.intermediate,
                     r.ReadLinear(base + "intermediate.dense", inter, h, arena_.get()));
    ASSIGN_OR_RETURN(layer.output, r.ReadLinear(base + "output.dense", h, inter, arena_.get()));
    ASSIGN_OR_RETURN(layer.output_norm, r.ReadLayerNorm(base + "output.LayerNorm", h));
  }
  return Status::Ok();
}

// Row chunks for the element-wise passes.
constexpr size_t kRowsPerTask = 16;
// Row chunk of the feed-forward block (bounds its activation memory).
constexpr int kFfnRows = 2048;

void BertEncoder::Embed(const PackedTokens& tokens, cpu::ThreadPool& pool, float* x) const {
  const size_t h = static_cast<size_t>(config_.hidden_size);
  const size_t total = tokens.ids.size();
  std::vector<int32_t> positions(total);
  for (size_t s = 0; s + 1 < tokens.offsets.size(); ++s) {
    for (size_t t = tokens.offsets[s]; t < tokens.offsets[s + 1]; ++t) {
      positions[t] = static_cast<int32_t>(t - tokens.offsets[s]) + position_offset_;
    }
  }
  pool.ParallelFor((total + kRowsPerTask - 1) / kRowsPerTask, [&](size_t task) {
    const size_t end = std::min(total, (task + 1) * kRowsPerTask);
    for (size_t t = task * kRowsPerTask; t < end; ++t) {
      float* row = x + t * h;
      const float* word = word_embeddings_.data() + static_cast<size_t>(tokens.ids[t]) * h;
      const float* pos = position_embeddings_.data() + static_cast<size_t>(positions[t]) * h;
      for (size_t j = 0; j < h; ++j) row[j] = word[j] + pos[j];
      if (!token_type_embeddings_.empty()) {
        const float* type =
            token_type_embeddings_.data() + static_cast<size_t>(tokens.type_ids[t]) * h;
        for (size_t j = 0; j < h; ++j) row[j] += type[j];
      }
      cpu::ResidualLayerNorm(row, nullptr, embedding_norm_.gamma.data(),
                             embedding_norm_.beta.data(), h, config_.layer_norm_eps);
    }
  });
}

void BertEncoder::Attention(const PackedTokens& tokens, cpu::ThreadPool& pool, const float* qkv,
                            float* context) const {
  const int h = config_.hidden_size;
  const int heads = config_.num_attention_heads;
  const int d = h / heads;
  const size_t ld_qkv = static_cast<size_t>(3 * h);
  const size_t sequences = tokens.offsets.size() - 1;
  // Longest sequences first so the long tasks do not end up last on one thread.
  std::vector<size_t> order(sequences);
  for (size_t s = 0; s < sequences; ++s) order[s] = s;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return tokens.offsets[a + 1] - tokens.offsets[a] > tokens.offsets[b + 1] - tokens.offsets[b];
  });
  pool.ParallelFor(sequences * static_cast<size_t>(heads), [&](size_t task) {
    const size_t s = order[task / static_cast<size_t>(heads)];
    const int head = static_cast<int>(task % static_cast<size_t>(heads));
    const size_t begin = tokens.offsets[s];
    const int len = static_cast<int>(tokens.offsets[s + 1] - begin);
    const float* q = qkv + begin * ld_qkv + static_cast<size_t>(head * d);
    const float* k = q + h;
    const float* v = q + 2 * h;
    const size_t k_packed = cpu::PackedBSize(d, len);
    const size_t v_packed = cpu::PackedBSize(len, d);
    const size_t scores_size = static_cast<size_t>(len) * static_cast<size_t>(len);
    const size_t packed_size = (std::max(k_packed, v_packed) + 15) / 16 * 16;
    float* scratch = AttentionScratch(packed_size + scores_size + static_cast<size_t>(len));
    float* packed = scratch;
    float* scores = scratch + packed_size;
    float* sums = scores + scores_size;
    cpu::PackBTransposed(k, ld_qkv, len, d, packed);
    cpu::Gemm(len, len, d, q, ld_qkv, packed, scores, static_cast<size_t>(len),
              cpu::Epilogue::kNone, nullptr, nullptr);
    // Softmax's division is applied to the head's output rows (d values each) instead of to the
    // probabilities (len values each).
    for (int i = 0; i < len; ++i) {
      sums[i] =
          cpu::SoftmaxNumerators(scores + static_cast<size_t>(i) * len, static_cast<size_t>(len));
    }
    cpu::PackB(v, ld_qkv, len, d, packed);
    float* out = context + begin * static_cast<size_t>(h) + static_cast<size_t>(head * d);
    cpu::Gemm(len, d, len, scores, static_cast<size_t>(len), packed, out, static_cast<size_t>(h),
              cpu::Epilogue::kNone, nullptr, nullptr);
    for (int i = 0; i < len; ++i) {
      cpu::Scale(out + static_cast<size_t>(i) * h, static_cast<size_t>(d), 1.0f / sums[i]);
    }
  });
}

void BertEncoder::Forward(const PackedTokens& tokens, cpu::ThreadPool& pool,
                          std::span<float> hidden) const {
  const int total = static_cast<int>(tokens.ids.size());
  const int h = config_.hidden_size;
  const int inter = config_.intermediate_size;
  const size_t rows = static_cast<size_t>(total);
  float* x = hidden.data();
  // The feed-forward block runs over row chunks, so its [rows × intermediate] activation never
  // exceeds kFfnRows rows however large the batch.
  const int ffn_rows = std::min(total, kFfnRows);
  const size_t qkv_size = rows * 3 * h, hidden_size = rows * h,
               inter_size = static_cast<size_t>(ffn_rows) * inter;
  float* const workspace = Workspace(qkv_size + 2 * hidden_size + inter_size);
  float* const qkv = workspace;
  float* const context = qkv + qkv_size;
  float* const projected = context + hidden_size;
  float* const intermediate = projected + hidden_size;

  auto residual_norm = [&](const LayerNormWeights& ln) {
    pool.ParallelFor((rows + kRowsPerTask - 1) / kRowsPerTask, [&](size_t task) {
      const size_t end = std::min(rows, (task + 1) * kRowsPerTask);
      for (size_t t = task * kRowsPerTask; t < end; ++t) {
        cpu::ResidualLayerNorm(x + t * h, projected + t * h, ln.gamma.data(), ln.beta.data(),
                               static_cast<size_t>(h), config_.layer_norm_eps);
      }
    });
  };

  Embed(tokens, pool, x);
  for (const BertLayer& layer : layers_) {
    cpu::Gemm(total, 3 * h, h, x, h, layer.qkv.data, qkv, 3 * h, cpu::Epilogue::kBias,
              layer.qkv.bias.data(), &pool);
    Attention(tokens, pool, qkv, context);
    cpu::Gemm(total, h, h, context, h, layer.attention_out.data, projected, h, cpu::Epilogue::kBias,
              layer.attention_out.bias.data(), &pool);
    residual_norm(layer.attention_norm);
    for (int r0 = 0; r0 < total; r0 += ffn_rows) {
      const int n = std::min(ffn_rows, total - r0);
      const size_t offset = static_cast<size_t>(r0) * h;
      cpu::Gemm(n, inter, h, x + offset, h, layer.intermediate.data, intermediate, inter,
                cpu::Epilogue::kBiasGelu, layer.intermediate.bias.data(), &pool);
      cpu::Gemm(n, h, inter, intermediate, inter, layer.output.data, projected + offset, h,
                cpu::Epilogue::kBias, layer.output.bias.data(), &pool);
    }
    residual_norm(layer.output_norm);
  }
}

}  // namespace

Result<std::unique_ptr<Encoder>> LoadBertLikeEncoder(const EncoderConfig& config,
                                                     const WeightStore& weights,
                                                     const BertVariant& variant) {
  if (config.hidden_act != "gelu") {
    return InvalidArgument("config.json: hidden_act \"" + config.hidden_act +
                           "\" is not supported (only \"gelu\")");
  }
  if (config.position_embedding_type != "absolute") {
    return InvalidArgument("config.json: position_embedding_type \"" +
                           config.position_embedding_type + "\" is not supported");
  }
  if (config.hidden_size % config.num_attention_heads != 0) {
    return InvalidArgument("config.json: hidden_size is not a multiple of num_attention_heads");
  }
  if (variant.position_offset < 0 || variant.position_offset >= config.max_position_embeddings) {
    return InvalidArgument("config.json: pad_token_id leaves no positions");
  }
  auto encoder = std::make_unique<BertEncoder>(config, variant.position_offset);
  RETURN_IF_ERROR(encoder->LoadWeights(weights, variant.prefixes));
  return std::unique_ptr<Encoder>(std::move(encoder));
}

Result<std::unique_ptr<Encoder>> LoadBertEncoder(const EncoderConfig& config,
                                                 const WeightStore& weights) {
  return LoadBertLikeEncoder(config, weights, BertVariant{{"", "bert.", "model."}, 0});
}

}  // namespace atrium::infer
