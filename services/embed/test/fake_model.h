// A deterministic stand-in for an encoder: the serving layer's tests need a model whose outputs
// are known and whose timing they control, not a real network (libs/infer tests the engine).
#pragma once

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "atrium/infer/embedding_model.h"

namespace atrium::embed::testing {

class FakeModel final : public infer::EmbeddingModel {
 public:
  explicit FakeModel(int hidden = 8, size_t max_tokens = 32) {
    std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
    for (const char* w : {"hello", "world", "the", "cat",  "sat",   "on",  "mat",   "a",
                          "dog",   "ran",   "##s", "fast", "slow",  "big", "small", "red",
                          "blue",  "green", "one", "two",  "three", ".",   ",",     "!"}) {
      vocab += std::string(w) + "\n";
    }
    tokenizer_ = std::move(*infer::Tokenizer::FromVocab(vocab));
    info_.architecture = "fake";
    info_.weights_dtype = "F32";
    info_.hidden_size = hidden;
    info_.num_layers = 1;
    info_.num_heads = 1;
    info_.vocab_size = static_cast<int>(tokenizer_->VocabSize());
    info_.max_input_tokens = max_tokens;
    info_.pooling = infer::Pooling::kMean;
    info_.prompts["query"] = "the ";
  }

  const infer::ModelInfo& info() const override { return info_; }
  const infer::Tokenizer& tokenizer() const override { return *tokenizer_; }

  // The expected pooled vector of one sequence.
  std::vector<float> Expected(const std::vector<int32_t>& ids, infer::Pooling pooling) const {
    size_t h = static_cast<size_t>(info_.hidden_size);
    std::vector<float> v(h, pooling == infer::Pooling::kMax ? -1e30f : 0.0f);
    for (size_t t = 0; t < ids.size(); ++t) {
      bool take = pooling == infer::Pooling::kMean || pooling == infer::Pooling::kMax ||
                  (pooling == infer::Pooling::kCls && t == 0) ||
                  (pooling == infer::Pooling::kLastToken && t + 1 == ids.size());
      if (!take) continue;
      for (size_t d = 0; d < h; ++d) {
        float x = TokenFeature(ids[t], t, d);
        if (pooling == infer::Pooling::kMax) {
          v[d] = std::max(v[d], x);
        } else {
          v[d] += pooling == infer::Pooling::kMean ? x / static_cast<float>(ids.size()) : x;
        }
      }
    }
    return v;
  }

  Status Embed(std::span<const infer::TokenSequence> batch, infer::Pooling pooling,
               std::span<float> out) const override {
    {
      std::unique_lock lock(mu_);
      calls_.push_back(batch.size());
      ++running_;
      cv_.notify_all();
      cv_.wait(lock, [this] { return !paused_; });
      if (fail_) {
        --running_;
        return Internal("the fake encoder failed");
      }
    }
    size_t h = static_cast<size_t>(info_.hidden_size);
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].ids.size() > info_.max_input_tokens) {
        std::lock_guard lock(mu_);
        --running_;
        return InvalidArgument("sequence too long");
      }
      std::vector<int32_t> ids(batch[i].ids.begin(), batch[i].ids.end());
      auto v = Expected(ids, pooling);
      std::copy(v.begin(), v.end(), out.begin() + static_cast<ptrdiff_t>(i * h));
    }
    std::lock_guard lock(mu_);
    --running_;
    return Status::Ok();
  }

  // Test controls: Pause makes Embed calls wait until Resume.
  void Pause() {
    std::lock_guard lock(mu_);
    paused_ = true;
  }
  void Resume() {
    std::lock_guard lock(mu_);
    paused_ = false;
    cv_.notify_all();
  }
  void FailNext(bool fail) {
    std::lock_guard lock(mu_);
    fail_ = fail;
  }
  // Waits until an Embed call is inside the model.
  void WaitRunning() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return running_ > 0; });
  }
  std::vector<size_t> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }
  void Prewarm(std::chrono::microseconds) const override { prewarms_.fetch_add(1); }
  int prewarms() const { return prewarms_.load(); }

 private:
  static float TokenFeature(int32_t id, size_t pos, size_t d) {
    return std::cos(0.37f * static_cast<float>(id) * static_cast<float>(d + 1) +
                    0.05f * static_cast<float>(pos));
  }

  infer::ModelInfo info_;
  std::unique_ptr<infer::Tokenizer> tokenizer_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable std::vector<size_t> calls_;  // guarded by mu_: batch sizes
  mutable int running_ = 0;            // guarded by mu_
  mutable std::atomic<int> prewarms_{0};
  bool paused_ = false;  // guarded by mu_
  bool fail_ = false;    // guarded by mu_
};

}  // namespace atrium::embed::testing
