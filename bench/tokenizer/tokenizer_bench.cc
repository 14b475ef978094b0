// Tokenizer throughput: every sentence of STS-B test through the MiniLM tokenizer.
// Usage: tokenizer_bench [DATA_DIR] [benchmark flags]; DATA_DIR defaults to ../shared/data.
// Reports tokens/s (counter "tokens") per core; the goal is ≥ 1M tokens/s/core (docs/embed.md).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "atrium/infer/tokenizer.h"

namespace {

std::string g_data_dir = "../shared/data";

std::vector<std::string> StsSentences() {
  std::ifstream in(g_data_dir + "/sts-test.csv");
  std::vector<std::string> out;
  for (std::string row; std::getline(in, row);) {
    std::vector<std::string> f;
    std::istringstream fields(row);
    for (std::string x; f.size() < 7 && std::getline(fields, x, '\t');) f.push_back(x);
    if (f.size() < 7) continue;
    out.push_back(f[5]);
    out.push_back(f[6]);
  }
  return out;
}

void BM_EncodeSts(benchmark::State& state) {
  auto tokenizer =
      atrium::infer::Tokenizer::FromFile(g_data_dir + "/minilm-tokenizer/tokenizer.json");
  if (!tokenizer.ok()) {
    state.SkipWithError(tokenizer.status().ToString().c_str());
    return;
  }
  auto sentences = StsSentences();
  if (sentences.empty()) {
    state.SkipWithError("no sentences: pass the data directory as the first argument");
    return;
  }
  size_t tokens = 0;
  for (auto _ : state) {
    for (const auto& s : sentences) {
      auto e = (*tokenizer)->Encode(s);
      tokens += e.size();
      benchmark::DoNotOptimize(e.ids.data());
    }
  }
  state.counters["tokens"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
  state.counters["sentences"] = benchmark::Counter(
      static_cast<double>(sentences.size() * state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_EncodeSts)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && argv[1][0] != '-') {
    g_data_dir = argv[1];
    --argc;
    ++argv;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
