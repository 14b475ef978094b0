// Atrium side of the embedding peer benchmark (bench/embed/peers/run drives it; see docs/
// benchmarks.md). Three subcommands share one inputs file, so that Atrium, PyTorch and ONNX
// Runtime run exactly the same token ids:
//
//   atrium_embed_bench tokenize --model DIR --sts FILE --out INPUTS.json [--batch 32]
//                      [--batches N] [--seed S] [--order shuffled|sorted]
//     Tokenizes every sentence of the STS-B TSV file (columns 6 and 7) with the model's own
//     tokenizer (special tokens included, truncated to the model's max_input_tokens), shuffles the
//     sentences with a fixed seed (a batch mixes the corpus' genres, like requests as they arrive)
//     and keeps the first N × batch sentences (N = 0, the default: every full batch). With
//     --order sorted those are then sorted by token count, longest first, before batching (what
//     sentence-transformers' encode() does for bulk jobs: little padding). Writes
//     {"batch_size", "order", "batches": [[[ids...] × batch] × N], "single_text", "single": [ids]}.
//
//   atrium_embed_bench embed --model DIR --inputs INPUTS.json --out VECS.f32 [--threads 2]
//     Embeds the first batch with the model's pooling (not normalized) and writes
//     batch_size × hidden float32 little-endian values: the reference the peers compare against.
//
//   atrium_embed_bench bench --model DIR --inputs INPUTS.json [--threads 2] [--min-seconds 10]
//                      [--single-iters 200]
//     Warms up on two batches, then times EmbeddingModel::Embed over every batch (whole passes,
//     repeated until --min-seconds have passed), then the single short request (`single`, one
//     sequence per call). Prints one JSON object: sequences_per_s, tokens_per_s (real tokens;
//     Atrium packs, so it runs no padding), batch_p50_ms / batch_p99_ms, single_p50_ms /
//     single_p99_ms.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "atrium/infer/embedding_model.h"

namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using atrium::infer::EmbeddingModel;
using atrium::infer::TokenSequence;

// The short request of the latency goal (a typical STS caption).
constexpr const char* kSingleText = "A man is playing a guitar.";

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "atrium_embed_bench: %s\n", message.c_str());
  std::exit(1);
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Nearest-rank percentile of sorted samples (p in (0, 100]).
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

std::unique_ptr<EmbeddingModel> LoadModel(const std::string& dir, int threads) {
  auto model = EmbeddingModel::Load(dir, {.threads = threads});
  if (!model.ok()) Fail(dir + ": " + model.status().ToString());
  return std::move(*model);
}

// Sentences of an STS-B TSV file (genre, file, year, id, score, sentence1, sentence2).
std::vector<std::string> ReadSts(const std::string& path) {
  std::ifstream in(path);
  if (!in) Fail("cannot read --sts " + path);
  std::vector<std::string> sentences;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::vector<std::string> fields;
    std::istringstream row(line);
    std::string field;
    while (std::getline(row, field, '\t')) fields.push_back(field);
    if (fields.size() >= 7) {
      sentences.push_back(fields[5]);
      sentences.push_back(fields[6]);
    }
  }
  if (sentences.empty()) Fail("no sentences in " + path);
  return sentences;
}

json::array IdsArray(const std::vector<int32_t>& ids) {
  json::array a;
  a.reserve(ids.size());
  for (int32_t id : ids) a.emplace_back(id);
  return a;
}

struct Inputs {
  size_t batch_size = 0;
  std::vector<std::vector<std::vector<int32_t>>> batches;
  std::vector<int32_t> single;
};

std::vector<int32_t> ReadIds(const json::value& v) {
  std::vector<int32_t> ids;
  for (const json::value& id : v.as_array())
    ids.push_back(static_cast<int32_t>(id.to_number<int64_t>()));
  return ids;
}

Inputs ReadInputs(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail("cannot read --inputs " + path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  boost::system::error_code ec;
  json::value doc = json::parse(text, ec);
  if (ec || !doc.is_object()) Fail(path + ": not a JSON object");
  Inputs inputs;
  try {
    const json::object& o = doc.as_object();
    inputs.batch_size = static_cast<size_t>(o.at("batch_size").to_number<int64_t>());
    for (const json::value& batch : o.at("batches").as_array()) {
      auto& b = inputs.batches.emplace_back();
      for (const json::value& seq : batch.as_array()) b.push_back(ReadIds(seq));
    }
    inputs.single = ReadIds(o.at("single"));
  } catch (const std::exception& e) {
    Fail(path + ": " + e.what());
  }
  if (inputs.batches.empty()) Fail(path + ": no batches");
  return inputs;
}

std::vector<TokenSequence> Sequences(const std::vector<std::vector<int32_t>>& batch) {
  std::vector<TokenSequence> seqs;
  seqs.reserve(batch.size());
  for (const auto& ids : batch) seqs.push_back(TokenSequence{ids, {}});
  return seqs;
}

int Tokenize(std::map<std::string, std::string>& flags) {
  auto model = LoadModel(flags["model"], 1);
  std::vector<std::string> sentences = ReadSts(flags["sts"]);
  const size_t batch_size = static_cast<size_t>(std::stoul(flags["batch"]));
  size_t batches = static_cast<size_t>(std::stoul(flags["batches"]));
  // Fisher-Yates with an explicit generator: the same order on every standard library.
  std::mt19937_64 rng(std::stoull(flags["seed"]));
  for (size_t i = sentences.size() - 1; i > 0; --i)
    std::swap(sentences[i], sentences[rng() % (i + 1)]);
  const size_t full = sentences.size() / batch_size;
  if (batches == 0 || batches > full) batches = full;
  const std::string& order = flags["order"];
  if (order != "shuffled" && order != "sorted") Fail("--order must be shuffled or sorted");
  const auto& tok = model->tokenizer();
  const size_t max_len = model->info().max_input_tokens;
  std::vector<std::vector<int32_t>> encoded;
  size_t tokens = 0;
  for (size_t i = 0; i < batches * batch_size; ++i) {
    encoded.push_back(tok.Encode(sentences[i], true, max_len).ids);
    tokens += encoded.back().size();
  }
  if (order == "sorted") {
    std::stable_sort(encoded.begin(), encoded.end(),
                     [](const auto& a, const auto& b) { return a.size() > b.size(); });
  }
  json::array all;
  for (size_t b = 0; b < batches; ++b) {
    json::array batch;
    for (size_t i = 0; i < batch_size; ++i) batch.push_back(IdsArray(encoded[b * batch_size + i]));
    all.push_back(std::move(batch));
  }
  json::object doc;
  doc["batch_size"] = batch_size;
  doc["order"] = order;
  doc["batches"] = std::move(all);
  doc["single_text"] = kSingleText;
  doc["single"] = IdsArray(tok.Encode(kSingleText, true, max_len).ids);
  std::ofstream out(flags["out"], std::ios::binary);
  out << json::serialize(doc) << '\n';
  if (!out) Fail("cannot write --out " + flags["out"]);
  std::fprintf(stderr, "tokenize: %zu %s batches of %zu, %zu tokens (%.1f per sentence)\n", batches,
               order.c_str(), batch_size, tokens,
               static_cast<double>(tokens) / static_cast<double>(batches * batch_size));
  return 0;
}

int Embed(std::map<std::string, std::string>& flags) {
  auto model = LoadModel(flags["model"], std::stoi(flags["threads"]));
  Inputs inputs = ReadInputs(flags["inputs"]);
  auto seqs = Sequences(inputs.batches.front());
  std::vector<float> out(seqs.size() * static_cast<size_t>(model->info().hidden_size));
  auto status = model->Embed(seqs, model->info().pooling, out);
  if (!status.ok()) Fail("Embed: " + status.ToString());
  std::ofstream file(flags["out"], std::ios::binary);
  file.write(reinterpret_cast<const char*>(out.data()),
             static_cast<std::streamsize>(out.size() * sizeof(float)));
  if (!file) Fail("cannot write --out " + flags["out"]);
  return 0;
}

int Bench(std::map<std::string, std::string>& flags) {
  const int threads = std::stoi(flags["threads"]);
  auto model = LoadModel(flags["model"], threads);
  Inputs inputs = ReadInputs(flags["inputs"]);
  const double min_seconds = std::stod(flags["min-seconds"]);
  const int single_iters = std::stoi(flags["single-iters"]);
  const auto pooling = model->info().pooling;
  const size_t hidden = static_cast<size_t>(model->info().hidden_size);

  std::vector<std::vector<TokenSequence>> batches;
  size_t pass_tokens = 0, pass_sequences = 0;
  for (const auto& b : inputs.batches) {
    batches.push_back(Sequences(b));
    for (const auto& ids : b) pass_tokens += ids.size();
    pass_sequences += b.size();
  }
  std::vector<float> out(inputs.batch_size * hidden);
  auto run = [&](const std::vector<TokenSequence>& batch) {
    auto status = model->Embed(batch, pooling, out);
    if (!status.ok()) Fail("Embed: " + status.ToString());
  };
  for (size_t i = 0; i < std::min<size_t>(2, batches.size()); ++i) run(batches[i]);

  std::vector<double> latencies;
  size_t passes = 0;
  const auto start = Clock::now();
  do {
    for (const auto& batch : batches) {
      const auto t0 = Clock::now();
      run(batch);
      latencies.push_back(Seconds(t0, Clock::now()));
    }
    ++passes;
  } while (Seconds(start, Clock::now()) < min_seconds);
  const double elapsed = Seconds(start, Clock::now());
  std::sort(latencies.begin(), latencies.end());

  TokenSequence one{inputs.single, {}};
  std::span<const TokenSequence> single_batch(&one, 1);
  std::vector<float> vec(hidden);
  std::vector<double> single;
  for (int i = 0; i < 10 + single_iters; ++i) {
    const auto t0 = Clock::now();
    auto status = model->Embed(single_batch, pooling, vec);
    if (!status.ok()) Fail("Embed: " + status.ToString());
    if (i >= 10) single.push_back(Seconds(t0, Clock::now()));
  }
  std::sort(single.begin(), single.end());

  json::object r;
  r["engine"] = "atrium";
  r["threads"] = threads;
  r["batch"] = inputs.batch_size;
  r["batches"] = batches.size();
  r["passes"] = passes;
  r["seconds"] = elapsed;
  r["sequences_per_s"] = static_cast<double>(pass_sequences * passes) / elapsed;
  r["tokens_per_s"] = static_cast<double>(pass_tokens * passes) / elapsed;
  r["padded_tokens_per_s"] = static_cast<double>(pass_tokens * passes) / elapsed;
  r["batch_p50_ms"] = Percentile(latencies, 50) * 1e3;
  r["batch_p99_ms"] = Percentile(latencies, 99) * 1e3;
  r["single_tokens"] = inputs.single.size();
  r["single_p50_ms"] = Percentile(single, 50) * 1e3;
  r["single_p99_ms"] = Percentile(single, 99) * 1e3;
  std::printf("%s\n", json::serialize(r).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: atrium_embed_bench tokenize|embed|bench --model DIR ...\n");
    return 2;
  }
  const std::string command = argv[1];
  std::map<std::string, std::string> flags = {
      {"batch", "32"},       {"batches", "0"},      {"seed", "1"},          {"threads", "2"},
      {"order", "shuffled"}, {"min-seconds", "10"}, {"single-iters", "200"}};
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0 || i + 1 >= argc) Fail("expected --flag VALUE, got " + arg);
    flags[arg.substr(2)] = argv[++i];
  }
  for (const char* required : {"model"}) {
    if (flags[required].empty()) Fail(std::string("--") + required + " is required");
  }
  try {
    if (command == "tokenize") return Tokenize(flags);
    if (command == "embed") return Embed(flags);
    if (command == "bench") return Bench(flags);
  } catch (const std::exception& e) {  // std::stoi and friends on a malformed flag
    Fail(e.what());
  }
  Fail("unknown command " + command);
}
