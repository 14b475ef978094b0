// CPU encoder throughput (bench/embed/run drives it): sequences/s and tokens/s for model
// directories on STS sentences in batches of 32, and GEMM GFLOP/s of the engine's kernel next to
// OpenBLAS sgemm (when built with it) on the encoder's shapes and on a large square product (the
// machine's measured sgemm rate).
//
//   embed_bench --sts FILE [--threads N] [--seconds S] [--batch B] [--no-gemm]
//               [--dump-ids FILE] MODEL_DIR...
//
// Prints one JSON object per line: {"kind":"model",...} and {"kind":"gemm",...}.
#include <time.h>
#include <unistd.h>
#include <algorithm>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "atrium/infer/embedding_model.h"
#include "cpu/gemm.h"
#include "cpu/thread_pool.h"

#ifdef ATRIUM_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;
using atrium::infer::EmbeddingModel;
using atrium::infer::TokenSequence;

std::vector<std::string> ReadSts(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> sentences;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields;
    size_t pos = 0;
    while (fields.size() < 7) {
      size_t tab = line.find('\t', pos);
      fields.push_back(line.substr(pos, tab == std::string::npos ? std::string::npos : tab - pos));
      if (tab == std::string::npos) break;
      pos = tab + 1;
    }
    if (fields.size() >= 7) {
      sentences.push_back(fields[5]);
      sentences.push_back(fields[6]);
    }
  }
  return sentences;
}

// CPU time of the whole process (all threads): on a shared machine, throughput per CPU-second is
// steadier than wall-clock throughput.
double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void BenchModel(const std::string& dir, const std::vector<std::string>& sentences, int threads,
                double min_seconds, size_t batch_size) {
  auto model = EmbeddingModel::Load(dir, {.threads = threads});
  if (!model.ok()) {
    std::fprintf(stderr, "%s: %s\n", dir.c_str(), model.status().ToString().c_str());
    std::exit(1);
  }
  const auto& m = **model;
  std::vector<std::vector<int32_t>> ids;
  size_t total_tokens = 0;
  for (const std::string& s : sentences) {
    ids.push_back(m.tokenizer().Encode(s, true, m.info().max_input_tokens).ids);
    total_tokens += ids.back().size();
  }
  std::vector<float> out(batch_size * static_cast<size_t>(m.info().hidden_size));
  auto run_batch = [&](size_t first) {
    std::vector<TokenSequence> batch;
    size_t tokens = 0;
    for (size_t i = 0; i < batch_size; ++i) {
      batch.push_back(TokenSequence{ids[(first + i) % ids.size()], {}});
      tokens += batch.back().ids.size();
    }
    auto s = m.Embed(batch, m.info().pooling, out);
    if (!s.ok()) std::exit(2);
    return tokens;
  };
  run_batch(0);  // warm-up
  size_t sequences = 0, tokens = 0, next = 0;
  std::vector<double> latencies;
  auto start = Clock::now();
  const double cpu_start = ProcessCpuSeconds();
  while (Seconds(start, Clock::now()) < min_seconds) {
    auto t0 = Clock::now();
    tokens += run_batch(next);
    latencies.push_back(Seconds(t0, Clock::now()));
    sequences += batch_size;
    next += batch_size;
  }
  double elapsed = Seconds(start, Clock::now());
  const double cpu = ProcessCpuSeconds() - cpu_start;
  std::sort(latencies.begin(), latencies.end());
  // A lone short request (single-sentence latency).
  std::vector<int32_t> one = m.tokenizer().Encode("A man is playing a guitar.").ids;
  std::vector<float> vec(static_cast<size_t>(m.info().hidden_size));
  // Median seconds of `runs` lone requests, `before(i)` running (untimed) ahead of each.
  auto lone_p50 = [&](int runs, const std::function<void(int)>& before) {
    std::vector<double> seconds;
    for (int i = 0; i < runs; ++i) {
      before(i);
      auto t0 = Clock::now();
      TokenSequence seq{one, {}};
      if (!m.Embed(std::span<const TokenSequence>(&seq, 1), m.info().pooling, vec).ok()) {
        std::exit(2);
      }
      seconds.push_back(Seconds(t0, Clock::now()));
    }
    std::sort(seconds.begin(), seconds.end());
    return seconds[seconds.size() / 2];
  };
  const double single_p50 = lone_p50(200, [](int) {});
  // The same request on a cold cache: before each one, 256 MiB of other memory traffic evicts the
  // weights from every cache level and the TLB.
  std::vector<char> sweep(size_t{256} << 20, 1);
  const double cold_p50 = lone_p50(20, [&](int i) {
    for (size_t j = 0; j < sweep.size(); j += 64) sweep[j] = static_cast<char>(sweep[j] + i);
  });
  // And after 200 ms of idleness, as an idle server's first request: under a hypervisor the idle
  // cores are parked and other tenants run there, which costs more than the cache misses alone.
  const double idle_p50 = lone_p50(15, [](int) { usleep(200 * 1000); });
  // Long sequences: 2 × 512 tokens (or the model's limit), as effective GFLOP/s of the whole
  // forward pass (projections, FFN and attention products), to compare with the sgemm rate.
  const auto& info = m.info();
  const size_t long_len = info.max_input_tokens;
  std::vector<int32_t> long_ids;
  for (size_t i = 0; long_ids.size() < long_len; ++i) {
    for (int32_t id : ids[i % ids.size()]) {
      if (long_ids.size() < long_len) long_ids.push_back(id);
    }
  }
  std::vector<TokenSequence> long_batch = {{long_ids, {}}, {long_ids, {}}};
  std::vector<float> long_out(2 * static_cast<size_t>(info.hidden_size));
  const double hd = info.hidden_size, in = info.intermediate_size, len = long_len;
  const double long_flops = info.num_layers * (2 * (2 * len) * (4 * hd * hd + 2 * hd * in) +
                                               2 * (2 * 2 * len * len * hd));
  double long_best = 1e30;
  for (int i = 0; i < 3; ++i) {
    auto t0 = Clock::now();
    if (!m.Embed(long_batch, info.pooling, long_out).ok()) std::exit(2);
    long_best = std::min(long_best, Seconds(t0, Clock::now()));
  }
  std::printf(
      "{\"kind\":\"model\",\"model\":\"%s\",\"threads\":%d,\"batch\":%zu,\"sequences_per_s\":%.1f,"
      "\"tokens_per_s\":%.0f,\"tokens_per_cpu_s\":%.0f,\"mean_tokens_per_sequence\":%.1f,\"batch_"
      "p50_ms\":%.2f,"
      "\"single_p50_ms\":%.3f,\"single_cold_p50_ms\":%.3f,\"single_idle_p50_ms\":%.3f,"
      "\"long_tokens\":%zu,"
      "\"long_gflops\":%.1f}\n",
      dir.c_str(), threads, batch_size, sequences / elapsed, tokens / elapsed, tokens / cpu,
      static_cast<double>(total_tokens) / ids.size(), latencies[latencies.size() / 2] * 1e3,
      single_p50 * 1e3, cold_p50 * 1e3, idle_p50 * 1e3, long_len, long_flops / long_best * 1e-9);
  std::fflush(stdout);
}

// Writes the token ids of every sentence (one JSON array per line) for the peer benchmarks, so
// they run on exactly the same inputs.
void DumpIds(const std::string& dir, const std::vector<std::string>& sentences,
             const std::string& path) {
  auto model = EmbeddingModel::Load(dir, {.threads = 1});
  if (!model.ok()) std::exit(1);
  std::ofstream out(path);
  for (const std::string& s : sentences) {
    auto ids = (*model)->tokenizer().Encode(s, true, (*model)->info().max_input_tokens).ids;
    out << '[';
    for (size_t i = 0; i < ids.size(); ++i) out << (i ? "," : "") << ids[i];
    out << "]\n";
  }
}

// Best-of GFLOP/s of fn over ~0.5 s.
template <typename Fn>
double GflopsOf(double flops, Fn fn) {
  fn();
  double best = 1e30;
  auto start = Clock::now();
  int iters = 0;
  while (iters < 3 || Seconds(start, Clock::now()) < 0.5) {
    auto t0 = Clock::now();
    fn();
    best = std::min(best, Seconds(t0, Clock::now()));
    ++iters;
  }
  return flops / best * 1e-9;
}

void BenchGemm(int m, int n, int k, int threads) {
  namespace cpu = atrium::infer::cpu;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<float> a(static_cast<size_t>(m) * k), w(static_cast<size_t>(n) * k),
      c(static_cast<size_t>(m) * n), bias(static_cast<size_t>(n), 0.5f);
  for (float& x : a) x = dist(rng);
  for (float& x : w) x = dist(rng);
  cpu::PackedWeight packed = cpu::PackWeight(w.data(), n, k, bias);
  cpu::ThreadPool pool(threads);
  const double flops = 2.0 * m * n * k;
  double ours = GflopsOf(flops, [&] {
    cpu::Gemm(m, n, k, a.data(), k, packed.data, c.data(), n, cpu::Epilogue::kBias,
              packed.bias.data(), &pool);
  });
  double blas = 0;
#ifdef ATRIUM_HAVE_OPENBLAS
  openblas_set_num_threads(threads);
  blas = GflopsOf(flops, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a.data(), k, w.data(), k,
                0.0f, c.data(), n);
  });
#endif
  std::printf(
      "{\"kind\":\"gemm\",\"m\":%d,\"n\":%d,\"k\":%d,\"threads\":%d,\"atrium_gflops\":%.1f,"
      "\"openblas_gflops\":%.1f,\"isa\":\"%s\"}\n",
      m, n, k, threads, ours, blas, cpu::GemmIsaName(cpu::ActiveGemmIsa()));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string sts;
  int threads = 2;
  double seconds = 3;
  size_t batch = 32;
  bool gemm = true;
  std::string dump_ids;
  std::vector<std::string> models;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (arg == "--sts") {
      sts = next();
    } else if (arg == "--threads") {
      threads = std::atoi(next().c_str());
    } else if (arg == "--seconds") {
      seconds = std::atof(next().c_str());
    } else if (arg == "--batch") {
      batch = static_cast<size_t>(std::atoi(next().c_str()));
    } else if (arg == "--dump-ids") {
      dump_ids = next();
    } else if (arg == "--no-gemm") {
      gemm = false;
    } else {
      models.push_back(arg);
    }
  }
  if (gemm) {
    // Encoder shapes at 512 tokens (BERT-base QKV, FFN up, FFN down) and a square product.
    BenchGemm(512, 2304, 768, threads);
    BenchGemm(512, 3072, 768, threads);
    BenchGemm(512, 768, 3072, threads);
    BenchGemm(512, 1536, 384, threads);
    BenchGemm(2048, 2048, 2048, threads);
  }
  if (!models.empty()) {
    std::vector<std::string> sentences = ReadSts(sts);
    if (sentences.empty()) {
      std::fprintf(stderr, "no sentences in --sts %s\n", sts.c_str());
      return 1;
    }
    if (!dump_ids.empty()) DumpIds(models.front(), sentences, dump_ids);
    for (const std::string& dir : models) BenchModel(dir, sentences, threads, seconds, batch);
  }
  return 0;
}
