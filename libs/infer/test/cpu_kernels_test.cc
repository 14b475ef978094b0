// The CPU engine's kernels against naive double-precision loops: GEMM on odd shapes (edge tiles,
// several K blocks, threaded), the bias/GELU epilogue, softmax and residual LayerNorm.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/thread_pool.h"
#include "cpu/vector_math.h"

namespace atrium::infer::cpu {
namespace {

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

double Gelu(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }

// Every microkernel this CPU supports (AVX-512, AVX2, portable), restored afterwards.
class GemmIsaTest : public ::testing::TestWithParam<GemmIsa> {
 protected:
  void SetUp() override {
    saved_ = ActiveGemmIsa();
    if (SetGemmIsa(GetParam()) != GetParam()) {
      SetGemmIsa(saved_);
      GTEST_SKIP() << GemmIsaName(GetParam()) << " not supported by this CPU";
    }
  }
  void TearDown() override { SetGemmIsa(saved_); }

 private:
  GemmIsa saved_ = GemmIsa::kPortable;
};

INSTANTIATE_TEST_SUITE_P(Isa, GemmIsaTest,
                         ::testing::Values(GemmIsa::kAvx512, GemmIsa::kAvx2, GemmIsa::kPortable),
                         [](const auto& info) { return std::string(GemmIsaName(info.param)); });

TEST_P(GemmIsaTest, MatchesNaiveProductOnOddShapesWithAndWithoutThreads) {
  ThreadPool pool(3);
  struct Shape {
    int m, n, k;
  };
  // n = 32/48/64: the direct-A path (attention's P·V) with pairs and an odd panel; 80 and 1152
  // the packed path with an odd and an even panel count.
  for (Shape s : {Shape{1, 1, 1}, Shape{5, 17, 3}, Shape{7, 33, 300}, Shape{193, 50, 513},
                  Shape{400, 64, 64}, Shape{13, 1152, 384}, Shape{31, 32, 40}, Shape{9, 48, 17},
                  Shape{200, 80, 300}, Shape{385, 1536, 384}}) {
    for (Epilogue e : {Epilogue::kNone, Epilogue::kBias, Epilogue::kBiasGelu}) {
      for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
        auto a = Random(static_cast<size_t>(s.m) * s.k, 1);
        auto w = Random(static_cast<size_t>(s.n) * s.k, 2);
        auto bias = Random(static_cast<size_t>(s.n), 3);
        PackedWeight pw = PackWeight(w.data(), s.n, s.k, bias);
        const size_t ldc = static_cast<size_t>(s.n) + 3;  // a row stride wider than n
        std::vector<float> c(static_cast<size_t>(s.m) * ldc, -7.0f);
        Gemm(s.m, s.n, s.k, a.data(), s.k, pw.data, c.data(), ldc, e, pw.bias.data(), p);
        for (int i = 0; i < s.m; ++i) {
          for (int j = 0; j < s.n; ++j) {
            double ref = 0;
            for (int q = 0; q < s.k; ++q) ref += double(a[i * s.k + q]) * w[j * s.k + q];
            if (e != Epilogue::kNone) ref += bias[j];
            if (e == Epilogue::kBiasGelu) ref = Gelu(ref);
            ASSERT_NEAR(c[i * ldc + j], ref, 1e-4 * (1 + std::sqrt(double(s.k))))
                << s.m << "x" << s.n << "x" << s.k << " at " << i << "," << j;
          }
          for (size_t j = static_cast<size_t>(s.n); j < ldc; ++j) ASSERT_EQ(c[i * ldc + j], -7.0f);
        }
      }
    }
  }
}

TEST_P(GemmIsaTest, PackBAndPackBTransposedWriteThePanelLayout) {
  // Shapes with whole 16 × 16 blocks, a partial panel and a k remainder.
  for (auto [k, n] : {std::pair{37, 21}, std::pair{32, 512}, std::pair{16, 16}, std::pair{5, 3}}) {
    auto b = Random(static_cast<size_t>(k) * n, 4);  // k rows of n
    std::vector<float> bt(static_cast<size_t>(n) * k);
    for (int p = 0; p < k; ++p) {
      for (int j = 0; j < n; ++j) bt[j * k + p] = b[p * n + j];
    }
    std::vector<float> expected(PackedBSize(k, n), 0.0f);
    for (int j = 0; j < n; ++j) {
      for (int p = 0; p < k; ++p) {
        expected[static_cast<size_t>(j / kGemmNr) * k * kGemmNr + p * kGemmNr + j % kGemmNr] =
            b[p * n + j];
      }
    }
    std::vector<float> x(PackedBSize(k, n), -1.0f), y(PackedBSize(k, n), -1.0f);
    PackB(b.data(), n, k, n, x.data());
    PackBTransposed(bt.data(), k, n, k, y.data());
    EXPECT_EQ(x, expected) << k << "x" << n;
    EXPECT_EQ(y, expected) << k << "x" << n;
  }
}

// The element-wise kernels follow the active ISA too; lengths cover the vector tails.
TEST_P(GemmIsaTest, GeluMatchesErfDefinition) {
  std::vector<float> x;
  for (float v = -10; v <= 10; v += 0.013f) x.push_back(v);
  for (size_t n : {x.size(), size_t{1}, size_t{15}, size_t{17}}) {
    std::vector<float> y(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(n));
    GeluInPlace(y.data(), y.size());
    for (size_t i = 0; i < n; ++i) {
      ASSERT_NEAR(y[i], Gelu(x[i]), 2e-6 * (1 + std::fabs(x[i]))) << x[i] << " n=" << n;
    }
  }
}

TEST_P(GemmIsaTest, SoftmaxSumsToOneAndMatchesExp) {
  for (size_t n : {1, 7, 16, 31, 33, 67, 512}) {
    auto x = Random(n, 5 + static_cast<uint32_t>(n));
    for (float& v : x) v *= 30;
    std::vector<float> y = x;
    SoftmaxInPlace(y.data(), y.size());
    double mx = -1e30, sum = 0, total = 0;
    for (float v : x) mx = std::max(mx, double(v));
    for (float v : x) sum += std::exp(v - mx);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_NEAR(y[i], std::exp(x[i] - mx) / sum, 1e-6) << "n=" << n << " at " << i;
      total += y[i];
    }
    EXPECT_NEAR(total, 1.0, 1e-5) << "n=" << n;
  }
}

TEST_P(GemmIsaTest, ResidualLayerNormNormalisesTheSum) {
  for (int n : {384, 768, 20}) {
    const size_t len = static_cast<size_t>(n);
    auto x = Random(len, 6), r = Random(len, 7), g = Random(len, 8), b = Random(len, 9);
    for (bool with_residual : {true, false}) {
      std::vector<float> y = x;
      ResidualLayerNorm(y.data(), with_residual ? r.data() : nullptr, g.data(), b.data(),
                        static_cast<size_t>(n), 1e-12f);
      double mean = 0, var = 0;
      auto in = [&](int i) { return double(x[i]) + (with_residual ? r[i] : 0.0); };
      for (int i = 0; i < n; ++i) mean += in(i);
      mean /= n;
      for (int i = 0; i < n; ++i) var += std::pow(in(i)-mean, 2);
      var /= n;
      for (int i = 0; i < n; ++i) {
        double ref = (in(i)-mean) / std::sqrt(var + 1e-12) * g[i] + b[i];
        ASSERT_NEAR(y[i], ref, 1e-5) << "n=" << n << " at " << i;
      }
    }
  }
}

TEST(ThreadPoolTest, RunsEveryTaskOnceAcrossJobs) {
  ThreadPool pool(4);
  for (int job = 0; job < 50; ++job) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(job * 7 + 1));
    pool.ParallelFor(hits.size(), [&](size_t i) { hits[i].fetch_add(1); });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  }
}

// A loop waits only for the workers that joined it. Short jobs (two tasks, often both taken by
// the caller) back to back, with idle gaps so that workers block and wake late: every task runs
// once, and a late worker never touches a finished job's function (whose captures are gone:
// ASan and TSan check this test).
TEST(ThreadPoolTest, LateWorkersNeverRunAFinishedJob) {
  ThreadPool pool(3);
  for (int job = 0; job < 2000; ++job) {
    auto hits = std::make_unique<std::atomic<int>[]>(2);
    pool.ParallelFor(2, [&hits](size_t i) { hits[i].fetch_add(1); });
    ASSERT_EQ(hits[0].load(), 1);
    ASSERT_EQ(hits[1].load(), 1);
    if (job % 200 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// Prewarm wakes the workers without a job: windows opened while jobs run, between them and while
// the workers sleep never make a task run twice or a worker join a finished job (ASan and TSan
// check this test too), and a pool that was prewarmed still blocks once the window is over.
TEST(ThreadPoolTest, PrewarmWindowsInterleaveSafelyWithJobs) {
  ThreadPool pool(3);
  std::atomic<bool> stop{false};
  std::thread hinter([&] {
    while (!stop.load()) {
      pool.Prewarm(std::chrono::microseconds(200));
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
  });
  for (int job = 0; job < 1000; ++job) {
    auto hits = std::make_unique<std::atomic<int>[]>(5);
    pool.ParallelFor(5, [&hits](size_t i) { hits[i].fetch_add(1); });
    for (int i = 0; i < 5; ++i) ASSERT_EQ(hits[i].load(), 1) << job;
    if (job % 100 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  stop = true;
  hinter.join();
  pool.Prewarm(std::chrono::microseconds(100));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::atomic<int> after{0};
  pool.ParallelFor(8, [&](size_t) { after.fetch_add(1); });
  EXPECT_EQ(after.load(), 8);
}

}  // namespace
}  // namespace atrium::infer::cpu
