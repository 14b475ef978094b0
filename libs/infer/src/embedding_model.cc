#include "atrium/infer/embedding_model.h"

#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "architecture.h"
#include "atrium/infer/safetensors.h"
#include "cpu/gemm.h"
#include "cpu/thread_pool.h"

namespace atrium::infer {
namespace json = boost::json;

namespace {

bool FileExists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// Parses the JSON file at `path`: NotFound when it does not exist, InvalidArgument when it is not
// a JSON object.
Result<json::object> ReadJsonObject(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + " does not exist");
  std::stringstream ss;
  ss << in.rdbuf();
  boost::system::error_code ec;
  json::value v = json::parse(ss.str(), ec);
  if (ec) return InvalidArgument(path + ": invalid JSON: " + ec.message());
  if (!v.is_object()) return InvalidArgument(path + ": not a JSON object");
  return std::move(v.as_object());
}

Status ReadInt(const json::object& o, const std::string& file, const char* field, bool required,
               int* out) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) {
    if (required) return InvalidArgument(file + ": missing field \"" + field + "\"");
    return Status::Ok();
  }
  if (!v->is_int64() || v->get_int64() < 0 || v->get_int64() > (1 << 24)) {
    return InvalidArgument(file + ": field \"" + field + "\" must be an integer in [0, 2^24]");
  }
  *out = static_cast<int>(v->get_int64());
  return Status::Ok();
}

Result<EncoderConfig> ParseEncoderConfig(const std::string& path) {
  ASSIGN_OR_RETURN(json::object o, ReadJsonObject(path));
  EncoderConfig c;
  const json::value* type = o.if_contains("model_type");
  if (type == nullptr || !type->is_string()) {
    return InvalidArgument(path + ": missing string field \"model_type\"");
  }
  c.model_type = std::string(type->as_string());
  c.type_vocab_size = 2;
  RETURN_IF_ERROR(ReadInt(o, path, "hidden_size", true, &c.hidden_size));
  RETURN_IF_ERROR(ReadInt(o, path, "num_hidden_layers", true, &c.num_hidden_layers));
  RETURN_IF_ERROR(ReadInt(o, path, "num_attention_heads", true, &c.num_attention_heads));
  RETURN_IF_ERROR(ReadInt(o, path, "intermediate_size", true, &c.intermediate_size));
  RETURN_IF_ERROR(ReadInt(o, path, "vocab_size", true, &c.vocab_size));
  RETURN_IF_ERROR(ReadInt(o, path, "max_position_embeddings", true, &c.max_position_embeddings));
  RETURN_IF_ERROR(ReadInt(o, path, "type_vocab_size", false, &c.type_vocab_size));
  RETURN_IF_ERROR(ReadInt(o, path, "pad_token_id", false, &c.pad_token_id));
  for (const char* field :
       {"hidden_size", "num_attention_heads", "intermediate_size", "vocab_size"}) {
    const json::value* v = o.if_contains(field);
    if (v->as_int64() == 0) return InvalidArgument(path + ": field \"" + field + "\" is 0");
  }
  if (const json::value* eps = o.if_contains("layer_norm_eps")) {
    if (!eps->is_number()) return InvalidArgument(path + ": field \"layer_norm_eps\" not a number");
    c.layer_norm_eps = static_cast<float>(eps->to_number<double>());
  }
  if (const json::value* act = o.if_contains("hidden_act")) {
    if (!act->is_string()) return InvalidArgument(path + ": field \"hidden_act\" not a string");
    c.hidden_act = std::string(act->as_string());
  }
  if (const json::value* pos = o.if_contains("position_embedding_type"); pos && pos->is_string()) {
    c.position_embedding_type = std::string(pos->as_string());
  }
  return c;
}

struct SentenceTransformerSettings {
  Pooling pooling = Pooling::kCls;
  bool normalize = false;
  size_t max_seq_length = 0;  // 0: not set
  std::map<std::string, std::string> prompts;
  std::string default_prompt_name;
};

Result<SentenceTransformerSettings> ReadSentenceTransformerFiles(const std::string& dir) {
  SentenceTransformerSettings st;
  std::string pooling_dir = "1_Pooling";
  const std::string modules_path = dir + "/modules.json";
  if (FileExists(modules_path)) {
    std::ifstream in(modules_path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    boost::system::error_code ec;
    json::value v = json::parse(ss.str(), ec);
    if (ec || !v.is_array()) return InvalidArgument(modules_path + ": not a JSON array");
    for (const json::value& m : v.as_array()) {
      if (!m.is_object()) return InvalidArgument(modules_path + ": module is not an object");
      const json::value* type = m.as_object().if_contains("type");
      if (type == nullptr || !type->is_string()) {
        return InvalidArgument(modules_path + ": module without string field \"type\"");
      }
      std::string_view t = type->as_string();
      if (t.ends_with(".Normalize")) st.normalize = true;
      if (t.ends_with(".Pooling")) {
        const json::value* path = m.as_object().if_contains("path");
        if (path != nullptr && path->is_string()) {
          std::string p(path->as_string());
          if (p.find("..") != std::string::npos || p.starts_with("/")) {
            return InvalidArgument(modules_path + ": Pooling path \"" + p +
                                   "\" leaves the model directory");
          }
          pooling_dir = p;
        }
      }
    }
  }

  const std::string pooling_path = dir + "/" + pooling_dir + "/config.json";
  if (FileExists(pooling_path)) {
    ASSIGN_OR_RETURN(json::object o, ReadJsonObject(pooling_path));
    auto flag = [&](const char* field) {
      const json::value* v = o.if_contains(field);
      return v != nullptr && v->is_bool() && v->get_bool();
    };
    if (flag("pooling_mode_cls_token")) {
      st.pooling = Pooling::kCls;
    } else if (flag("pooling_mode_mean_tokens")) {
      st.pooling = Pooling::kMean;
    } else if (flag("pooling_mode_max_tokens")) {
      st.pooling = Pooling::kMax;
    } else if (flag("pooling_mode_lasttoken")) {
      st.pooling = Pooling::kLastToken;
    } else if (flag("pooling_mode_mean_sqrt_len_tokens") ||
               flag("pooling_mode_weightedmean_tokens")) {
      return InvalidArgument(pooling_path +
                             ": pooling_mode_mean_sqrt_len_tokens / "
                             "pooling_mode_weightedmean_tokens are not supported");
    }
  }

  const std::string sbert_path = dir + "/sentence_bert_config.json";
  if (FileExists(sbert_path)) {
    ASSIGN_OR_RETURN(json::object o, ReadJsonObject(sbert_path));
    if (const json::value* v = o.if_contains("max_seq_length"); v && !v->is_null()) {
      if (!v->is_int64() || v->get_int64() <= 0) {
        return InvalidArgument(sbert_path +
                               ": field \"max_seq_length\" must be a positive integer");
      }
      st.max_seq_length = static_cast<size_t>(v->get_int64());
    }
  }

  const std::string prompts_path = dir + "/config_sentence_transformers.json";
  if (FileExists(prompts_path)) {
    ASSIGN_OR_RETURN(json::object o, ReadJsonObject(prompts_path));
    if (const json::value* v = o.if_contains("prompts"); v && !v->is_null()) {
      if (!v->is_object())
        return InvalidArgument(prompts_path + ": field \"prompts\" not an object");
      for (const auto& kv : v->as_object()) {
        if (!kv.value().is_string()) {
          return InvalidArgument(prompts_path + ": prompt \"" + std::string(kv.key()) +
                                 "\" is not a string");
        }
        st.prompts[std::string(kv.key())] = std::string(kv.value().as_string());
      }
    }
    if (const json::value* v = o.if_contains("default_prompt_name"); v && v->is_string()) {
      st.default_prompt_name = std::string(v->as_string());
      if (!st.default_prompt_name.empty() && st.prompts.count(st.default_prompt_name) == 0) {
        return InvalidArgument(prompts_path + ": default_prompt_name \"" + st.default_prompt_name +
                               "\" is not in \"prompts\"");
      }
    }
  }
  return st;
}

Result<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& dir) {
  const std::string json_path = dir + "/tokenizer.json";
  if (FileExists(json_path)) return Tokenizer::FromFile(json_path);
  const std::string vocab_path = dir + "/vocab.txt";
  if (!FileExists(vocab_path)) {
    return NotFound(json_path + " does not exist (nor " + vocab_path + ")");
  }
  bool lowercase = true;
  const std::string config_path = dir + "/tokenizer_config.json";
  if (FileExists(config_path)) {
    ASSIGN_OR_RETURN(json::object o, ReadJsonObject(config_path));
    if (const json::value* v = o.if_contains("do_lower_case"); v && v->is_bool()) {
      lowercase = v->get_bool();
    }
  }
  return Tokenizer::FromVocabFile(vocab_path, lowercase);
}

int OnlineCores() {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

class CpuEmbeddingModel final : public EmbeddingModel {
 public:
  CpuEmbeddingModel(ModelInfo info, EncoderConfig config, std::unique_ptr<Tokenizer> tokenizer,
                    std::unique_ptr<Encoder> encoder, int threads)
      : info_(std::move(info)),
        config_(std::move(config)),
        tokenizer_(std::move(tokenizer)),
        encoder_(std::move(encoder)),
        pool_(threads) {}

  const ModelInfo& info() const override { return info_; }
  const Tokenizer& tokenizer() const override { return *tokenizer_; }

  Status Embed(std::span<const TokenSequence> batch, Pooling pooling,
               std::span<float> out) const override;

  void Prewarm(std::chrono::microseconds window) const override { pool_.Prewarm(window); }

 private:
  ModelInfo info_;
  EncoderConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Encoder> encoder_;
  mutable cpu::ThreadPool pool_;  // ParallelFor is thread-safe (jobs are serialised)
};

Status CpuEmbeddingModel::Embed(std::span<const TokenSequence> batch, Pooling pooling,
                                std::span<float> out) const {
  const size_t h = static_cast<size_t>(info_.hidden_size);
  if (out.size() != batch.size() * h) {
    return InvalidArgument("output holds " + std::to_string(out.size()) + " floats, expected " +
                           std::to_string(batch.size() * h));
  }
  if (batch.empty()) return Status::Ok();
  size_t total = 0;
  for (size_t s = 0; s < batch.size(); ++s) {
    const TokenSequence& seq = batch[s];
    const std::string where = "input " + std::to_string(s);
    if (seq.ids.empty()) return InvalidArgument(where + " is empty");
    if (seq.ids.size() > info_.max_input_tokens) {
      return InvalidArgument(where + " has " + std::to_string(seq.ids.size()) +
                             " tokens, more than the model's limit of " +
                             std::to_string(info_.max_input_tokens));
    }
    for (int32_t id : seq.ids) {
      if (id < 0 || id >= config_.vocab_size) {
        return InvalidArgument(where + ": token id " + std::to_string(id) +
                               " is outside the vocabulary (size " +
                               std::to_string(config_.vocab_size) + ")");
      }
    }
    if (!seq.type_ids.empty()) {
      if (seq.type_ids.size() != seq.ids.size()) {
        return InvalidArgument(where + ": type_ids and ids differ in length");
      }
      for (int32_t t : seq.type_ids) {
        if (t < 0 || t >= std::max(1, config_.type_vocab_size)) {
          return InvalidArgument(where + ": type id " + std::to_string(t) + " is out of range");
        }
      }
    }
    total += seq.ids.size();
  }

  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids(total, 0);
  std::vector<size_t> offsets;
  ids.reserve(total);
  offsets.reserve(batch.size() + 1);
  for (const TokenSequence& seq : batch) {
    offsets.push_back(ids.size());
    if (!seq.type_ids.empty()) {
      std::copy(seq.type_ids.begin(), seq.type_ids.end(),
                type_ids.begin() + static_cast<std::ptrdiff_t>(ids.size()));
    }
    ids.insert(ids.end(), seq.ids.begin(), seq.ids.end());
  }
  offsets.push_back(ids.size());

  cpu::AlignedFloats hidden = cpu::AllocateFloats(total * h);
  PackedTokens packed{ids, type_ids, offsets};
  encoder_->Forward(packed, pool_, std::span<float>(hidden.get(), total * h));

  for (size_t s = 0; s < batch.size(); ++s) {
    const size_t begin = offsets[s];
    const size_t end = offsets[s + 1];
    float* dst = out.data() + s * h;
    const float* first = hidden.get() + begin * h;
    switch (pooling) {
      case Pooling::kCls:
        std::copy(first, first + h, dst);
        break;
      case Pooling::kLastToken: {
        const float* last = hidden.get() + (end - 1) * h;
        std::copy(last, last + h, dst);
        break;
      }
      case Pooling::kMean: {
        std::vector<double> acc(h, 0.0);
        for (size_t t = begin; t < end; ++t) {
          const float* row = hidden.get() + t * h;
          for (size_t j = 0; j < h; ++j) acc[j] += row[j];
        }
        const double inv = 1.0 / static_cast<double>(end - begin);
        for (size_t j = 0; j < h; ++j) dst[j] = static_cast<float>(acc[j] * inv);
        break;
      }
      case Pooling::kMax: {
        std::copy(first, first + h, dst);
        for (size_t t = begin + 1; t < end; ++t) {
          const float* row = hidden.get() + t * h;
          for (size_t j = 0; j < h; ++j) dst[j] = std::max(dst[j], row[j]);
        }
        break;
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Result<Pooling> ParsePooling(std::string_view name) {
  if (name == "mean") return Pooling::kMean;
  if (name == "cls") return Pooling::kCls;
  if (name == "last_token" || name == "lasttoken") return Pooling::kLastToken;
  if (name == "max") return Pooling::kMax;
  return InvalidArgument("pooling \"" + std::string(name) +
                         "\" is not one of mean, cls, last_token, max");
}

std::string_view PoolingName(Pooling pooling) {
  switch (pooling) {
    case Pooling::kMean:
      return "mean";
    case Pooling::kCls:
      return "cls";
    case Pooling::kLastToken:
      return "last_token";
    case Pooling::kMax:
      return "max";
  }
  return "cls";
}

Result<std::unique_ptr<EmbeddingModel>> EmbeddingModel::Load(const std::string& dir,
                                                             const LoadOptions& options) {
  ASSIGN_OR_RETURN(EncoderConfig config, ParseEncoderConfig(dir + "/config.json"));
  const ArchitectureFactory* factory = nullptr;
  std::string supported;
  for (const ArchitectureFactory& f : Architectures()) {
    if (f.model_type == config.model_type) factory = &f;
    supported += (supported.empty() ? "" : ", ") + std::string(f.model_type);
  }
  if (factory == nullptr) {
    return InvalidArgument(dir + "/config.json: model_type \"" + config.model_type +
                           "\" is not supported (supported: " + supported + ")");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, LoadTokenizer(dir));
  ASSIGN_OR_RETURN(SentenceTransformerSettings st, ReadSentenceTransformerFiles(dir));
  ASSIGN_OR_RETURN(std::unique_ptr<WeightStore> weights, WeightStore::Open(dir));
  auto encoder = factory->load(config, *weights);
  if (!encoder.ok()) return encoder.status().WithContext(dir);

  ModelInfo info;
  info.architecture = config.model_type;
  info.weights_dtype = weights->FloatDtype();
  info.hidden_size = config.hidden_size;
  info.num_layers = config.num_hidden_layers;
  info.num_heads = config.num_attention_heads;
  info.intermediate_size = config.intermediate_size;
  info.vocab_size = config.vocab_size;
  info.max_position_embeddings = config.max_position_embeddings;
  info.max_input_tokens = (*encoder)->max_tokens();
  if (st.max_seq_length > 0)
    info.max_input_tokens = std::min(info.max_input_tokens, st.max_seq_length);
  info.pooling = st.pooling;
  info.normalize = st.normalize;
  info.prompts = std::move(st.prompts);
  info.default_prompt_name = std::move(st.default_prompt_name);
  info.parameter_count = weights->ParameterCount();

  const int threads = options.threads > 0 ? options.threads : OnlineCores();
  return std::unique_ptr<EmbeddingModel>(
      new CpuEmbeddingModel(std::move(info), std::move(config), std::move(tokenizer),
                            std::move(encoder).value(), threads));
}

}  // namespace atrium::infer
