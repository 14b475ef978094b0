#include "cpu/gemm.h"

#include <sys/mman.h>

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "cpu/thread_pool.h"
#include "cpu/vector_math.h"

namespace atrium::infer::cpu {
namespace {

bool DetectAvx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

__attribute__((target("avx2,fma"))) inline void StoreRow(float* row, __m256 v0, __m256 v1,
                                                         bool accumulate) {
  if (accumulate) {
    v0 = _mm256_add_ps(v0, _mm256_loadu_ps(row));
    v1 = _mm256_add_ps(v1, _mm256_loadu_ps(row + 8));
  }
  _mm256_storeu_ps(row, v0);
  _mm256_storeu_ps(row + 8, v1);
}

// c[6×16] (row stride ldc) = (accumulate ? c : 0) + a_panel · b_panel over kc steps.
// a: kc × 6 (column of the 6 rows per step), b: kc × 16.
__attribute__((target("avx2,fma"))) void Kernel6x16Avx2(int kc, const float* a, const float* b,
                                                        float* c, size_t ldc, bool accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int p = 0; p < kc; ++p) {
    __m256 b0 = _mm256_load_ps(b);
    __m256 b1 = _mm256_load_ps(b + 8);
    __m256 a0 = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(a0, b0, c00);
    c01 = _mm256_fmadd_ps(a0, b1, c01);
    __m256 a1 = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(a1, b0, c10);
    c11 = _mm256_fmadd_ps(a1, b1, c11);
    __m256 a2 = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(a2, b0, c20);
    c21 = _mm256_fmadd_ps(a2, b1, c21);
    __m256 a3 = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(a3, b0, c30);
    c31 = _mm256_fmadd_ps(a3, b1, c31);
    __m256 a4 = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(a4, b0, c40);
    c41 = _mm256_fmadd_ps(a4, b1, c41);
    __m256 a5 = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(a5, b0, c50);
    c51 = _mm256_fmadd_ps(a5, b1, c51);
    a += kGemmMr;
    b += kGemmNr;
  }
  StoreRow(c + 0 * ldc, c00, c01, accumulate);
  StoreRow(c + 1 * ldc, c10, c11, accumulate);
  StoreRow(c + 2 * ldc, c20, c21, accumulate);
  StoreRow(c + 3 * ldc, c30, c31, accumulate);
  StoreRow(c + 4 * ldc, c40, c41, accumulate);
  StoreRow(c + 5 * ldc, c50, c51, accumulate);
}

// As Kernel6x16Avx2, but A is read in place: `rows` (1..6) rows of stride lda starting at `a`
// (missing rows repeat the last one; the caller discards their results). Saves packing A when
// each A element is used by few columns (P·V in attention: n = head_dim).
__attribute__((target("avx2,fma"))) void KernelDirect6x16Avx2(int kc, const float* a, size_t lda,
                                                              int rows, const float* b, float* c,
                                                              size_t ldc, bool accumulate) {
  const float* r0 = a;
  const float* r1 = a + std::min(1, rows - 1) * lda;
  const float* r2 = a + std::min(2, rows - 1) * lda;
  const float* r3 = a + std::min(3, rows - 1) * lda;
  const float* r4 = a + std::min(4, rows - 1) * lda;
  const float* r5 = a + std::min(5, rows - 1) * lda;
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int p = 0; p < kc; ++p) {
    __m256 b0 = _mm256_load_ps(b);
    __m256 b1 = _mm256_load_ps(b + 8);
    __m256 a0 = _mm256_broadcast_ss(r0 + p);
    c00 = _mm256_fmadd_ps(a0, b0, c00);
    c01 = _mm256_fmadd_ps(a0, b1, c01);
    __m256 a1 = _mm256_broadcast_ss(r1 + p);
    c10 = _mm256_fmadd_ps(a1, b0, c10);
    c11 = _mm256_fmadd_ps(a1, b1, c11);
    __m256 a2 = _mm256_broadcast_ss(r2 + p);
    c20 = _mm256_fmadd_ps(a2, b0, c20);
    c21 = _mm256_fmadd_ps(a2, b1, c21);
    __m256 a3 = _mm256_broadcast_ss(r3 + p);
    c30 = _mm256_fmadd_ps(a3, b0, c30);
    c31 = _mm256_fmadd_ps(a3, b1, c31);
    __m256 a4 = _mm256_broadcast_ss(r4 + p);
    c40 = _mm256_fmadd_ps(a4, b0, c40);
    c41 = _mm256_fmadd_ps(a4, b1, c41);
    __m256 a5 = _mm256_broadcast_ss(r5 + p);
    c50 = _mm256_fmadd_ps(a5, b0, c50);
    c51 = _mm256_fmadd_ps(a5, b1, c51);
    b += kGemmNr;
  }
  StoreRow(c + 0 * ldc, c00, c01, accumulate);
  StoreRow(c + 1 * ldc, c10, c11, accumulate);
  StoreRow(c + 2 * ldc, c20, c21, accumulate);
  StoreRow(c + 3 * ldc, c30, c31, accumulate);
  StoreRow(c + 4 * ldc, c40, c41, accumulate);
  StoreRow(c + 5 * ldc, c50, c51, accumulate);
}

void Kernel6x16Portable(int kc, const float* a, const float* b, float* c, size_t ldc,
                        bool accumulate) {
  float acc[kGemmMr][kGemmNr] = {};
  for (int p = 0; p < kc; ++p) {
    for (int i = 0; i < kGemmMr; ++i) {
      const float av = a[i];
      for (int j = 0; j < kGemmNr; ++j) acc[i][j] += av * b[j];
    }
    a += kGemmMr;
    b += kGemmNr;
  }
  for (int i = 0; i < kGemmMr; ++i) {
    for (int j = 0; j < kGemmNr; ++j) {
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
    }
  }
}

// AVX-512: two adjacent 16-column panels per call (b0 and b1, each kc × 16), 12 zmm accumulators.
// Per step 2 loads of B and 6 broadcasts of A feed 12 FMAs, so the FMA ports, not the loads, bound
// it: twice the AVX2 kernel's arithmetic per cycle on cores with two 512-bit FMA units.
template <bool kDirect>
__attribute__((target("avx512f"))) inline void Kernel6x32Avx512Impl(int kc, const float* a,
                                                                    size_t lda, int rows,
                                                                    const float* b0,
                                                                    const float* b1, float* c,
                                                                    size_t ldc, bool accumulate) {
  // Direct A: the rows in place (missing rows repeat the last one; their results are discarded).
  const float* r[kGemmMr];
  for (int i = 0; i < kGemmMr; ++i) r[i] = a + (kDirect ? std::min(i, rows - 1) * lda : 0);
  __m512 acc0[kGemmMr], acc1[kGemmMr];
  for (int i = 0; i < kGemmMr; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int p = 0; p < kc; ++p) {
    const __m512 v0 = _mm512_loadu_ps(b0);
    const __m512 v1 = _mm512_loadu_ps(b1);
#pragma GCC unroll 6
    for (int i = 0; i < kGemmMr; ++i) {
      const __m512 ai = _mm512_set1_ps(kDirect ? r[i][p] : a[i]);
      acc0[i] = _mm512_fmadd_ps(ai, v0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(ai, v1, acc1[i]);
    }
    if (!kDirect) a += kGemmMr;
    b0 += kGemmNr;
    b1 += kGemmNr;
  }
  for (int i = 0; i < kGemmMr; ++i) {
    float* row = c + i * ldc;
    if (accumulate) {
      acc0[i] = _mm512_add_ps(acc0[i], _mm512_loadu_ps(row));
      acc1[i] = _mm512_add_ps(acc1[i], _mm512_loadu_ps(row + kGemmNr));
    }
    _mm512_storeu_ps(row, acc0[i]);
    _mm512_storeu_ps(row + kGemmNr, acc1[i]);
  }
}

// AVX-512, one panel (the odd last one of a tile): 6 accumulators.
template <bool kDirect>
__attribute__((target("avx512f"))) inline void Kernel6x16Avx512Impl(int kc, const float* a,
                                                                    size_t lda, int rows,
                                                                    const float* b, float* c,
                                                                    size_t ldc, bool accumulate) {
  // Direct A: the rows in place (missing rows repeat the last one; their results are discarded).
  const float* r[kGemmMr];
  for (int i = 0; i < kGemmMr; ++i) r[i] = a + (kDirect ? std::min(i, rows - 1) * lda : 0);
  __m512 acc[kGemmMr];
  for (int i = 0; i < kGemmMr; ++i) acc[i] = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (int p = 0; p < kc; ++p) {
    const __m512 v = _mm512_loadu_ps(b);
#pragma GCC unroll 6
    for (int i = 0; i < kGemmMr; ++i) {
      acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(kDirect ? r[i][p] : a[i]), v, acc[i]);
    }
    if (!kDirect) a += kGemmMr;
    b += kGemmNr;
  }
  for (int i = 0; i < kGemmMr; ++i) {
    float* row = c + i * ldc;
    if (accumulate) acc[i] = _mm512_add_ps(acc[i], _mm512_loadu_ps(row));
    _mm512_storeu_ps(row, acc[i]);
  }
}

__attribute__((target("avx512f"))) void Kernel6x32Avx512(int kc, const float* a, const float* b0,
                                                         const float* b1, float* c, size_t ldc,
                                                         bool accumulate) {
  Kernel6x32Avx512Impl<false>(kc, a, 0, kGemmMr, b0, b1, c, ldc, accumulate);
}
__attribute__((target("avx512f"))) void KernelDirect6x32Avx512(int kc, const float* a, size_t lda,
                                                               int rows, const float* b0,
                                                               const float* b1, float* c,
                                                               size_t ldc, bool accumulate) {
  Kernel6x32Avx512Impl<true>(kc, a, lda, rows, b0, b1, c, ldc, accumulate);
}
__attribute__((target("avx512f"))) void Kernel6x16Avx512(int kc, const float* a, const float* b,
                                                         float* c, size_t ldc, bool accumulate) {
  Kernel6x16Avx512Impl<false>(kc, a, 0, kGemmMr, b, c, ldc, accumulate);
}
__attribute__((target("avx512f"))) void KernelDirect6x16Avx512(int kc, const float* a, size_t lda,
                                                               int rows, const float* b, float* c,
                                                               size_t ldc, bool accumulate) {
  Kernel6x16Avx512Impl<true>(kc, a, lda, rows, b, c, ldc, accumulate);
}

GemmIsa DetectIsa() {
  if (__builtin_cpu_supports("avx512f")) return GemmIsa::kAvx512;
  if (DetectAvx2()) return GemmIsa::kAvx2;
  return GemmIsa::kPortable;
}

// The detected ISA, lowered by ATRIUM_INFER_ISA (avx2 or portable) when set.
GemmIsa InitialIsa() {
  GemmIsa isa = DetectIsa();
  const char* env = std::getenv("ATRIUM_INFER_ISA");
  if (env == nullptr) return isa;
  const std::string_view want(env);
  GemmIsa wanted = isa;
  if (want == "portable") wanted = GemmIsa::kPortable;
  if (want == "avx2") wanted = GemmIsa::kAvx2;
  return static_cast<int>(wanted) < static_cast<int>(isa) ? wanted : isa;
}

std::atomic<GemmIsa>& ActiveIsa() {
  static std::atomic<GemmIsa> isa{InitialIsa()};
  return isa;
}

// Packs rows [0, mc) × cols [0, kc) of a (stride lda) into 6-row micro-panels, zero-padding the
// last one.
void PackA(const float* a, size_t lda, int mc, int kc, float* out) {
  for (int i0 = 0; i0 < mc; i0 += kGemmMr) {
    const int rows = std::min(kGemmMr, mc - i0);
    if (rows == kGemmMr) {
      const float* r0 = a + static_cast<size_t>(i0) * lda;
      for (int p = 0; p < kc; ++p) {
        for (int i = 0; i < kGemmMr; ++i) out[i] = r0[i * lda + p];
        out += kGemmMr;
      }
    } else {
      for (int p = 0; p < kc; ++p) {
        for (int i = 0; i < kGemmMr; ++i) {
          out[i] = i < rows ? a[(static_cast<size_t>(i0) + i) * lda + p] : 0.0f;
        }
        out += kGemmMr;
      }
    }
  }
}

float* ThreadScratch(size_t floats) {
  thread_local AlignedFloats buffer;
  thread_local size_t capacity = 0;
  if (capacity < floats) {
    buffer = AllocateFloats(floats);
    capacity = floats;
  }
  return buffer.get();
}

struct GemmArgs {
  int m, n, k;
  const float* a;
  size_t lda;
  const float* b;
  float* c;
  size_t ldc;
  Epilogue epilogue;
  const float* bias;
  // When set: A already packed, block (mb, kb) at ((mb * k_blocks + kb) * block_rows * kGemmKc).
  const float* packed_a = nullptr;
  int block_rows = 0;
  bool direct_a = false;  // read A in place (AVX2 only)
};

// Computes C[m0:m0+mc, n0:n0+nc] (nc a multiple of 16 or reaching n).
void GemmTile(const GemmArgs& g, int m0, int mc, int n0, int nc) {
  const GemmIsa isa = ActiveIsa().load(std::memory_order_relaxed);
  const float* apack = nullptr;
  float* own_pack = nullptr;
  if (g.packed_a == nullptr && !g.direct_a) {
    own_pack = ThreadScratch(static_cast<size_t>(kGemmMc + kGemmMr) * kGemmKc);
  }
  constexpr int kEdgeCols = 2 * kGemmNr;
  alignas(64) float edge[kGemmMr * kEdgeCols];
  const size_t panel_stride = static_cast<size_t>(g.k) * kGemmNr;
  const int k_blocks = (g.k + kGemmKc - 1) / kGemmKc;
  for (int k0 = 0; k0 < g.k; k0 += kGemmKc) {
    const int kc = std::min(kGemmKc, g.k - k0);
    const bool accumulate = k0 > 0;
    if (own_pack != nullptr) {
      PackA(g.a + static_cast<size_t>(m0) * g.lda + k0, g.lda, mc, kc, own_pack);
      apack = own_pack;
    } else if (!g.direct_a) {
      const size_t block = static_cast<size_t>(m0 / g.block_rows) * k_blocks + k0 / kGemmKc;
      apack = g.packed_a + block * static_cast<size_t>(g.block_rows) * kGemmKc;
    }
    for (int j0 = n0; j0 < n0 + nc;) {
      // AVX-512 takes two panels at a time while the tile has two left.
      const bool pair = isa == GemmIsa::kAvx512 && j0 + kGemmNr < n0 + nc;
      const int width = pair ? 2 * kGemmNr : kGemmNr;
      const float* bp = g.b + static_cast<size_t>(j0 / kGemmNr) * panel_stride +
                        static_cast<size_t>(k0) * kGemmNr;
      const int cols = std::min(width, g.n - j0);
      for (int i0 = 0; i0 < mc; i0 += kGemmMr) {
        const int rows = std::min(kGemmMr, mc - i0);
        float* cp = g.c + static_cast<size_t>(m0 + i0) * g.ldc + j0;
        const bool full = rows == kGemmMr && cols == width;
        float* out = full ? cp : edge;
        const size_t ldo = full ? g.ldc : kEdgeCols;
        const bool acc = full && accumulate;
        const float* ar = g.direct_a ? g.a + static_cast<size_t>(m0 + i0) * g.lda + k0
                                     : apack + static_cast<size_t>(i0) * kc;
        switch (isa) {
          case GemmIsa::kAvx512:
            if (g.direct_a && pair) {
              KernelDirect6x32Avx512(kc, ar, g.lda, rows, bp, bp + panel_stride, out, ldo, acc);
            } else if (g.direct_a) {
              KernelDirect6x16Avx512(kc, ar, g.lda, rows, bp, out, ldo, acc);
            } else if (pair) {
              Kernel6x32Avx512(kc, ar, bp, bp + panel_stride, out, ldo, acc);
            } else {
              Kernel6x16Avx512(kc, ar, bp, out, ldo, acc);
            }
            break;
          case GemmIsa::kAvx2:
            if (g.direct_a) {
              KernelDirect6x16Avx2(kc, ar, g.lda, rows, bp, out, ldo, acc);
            } else {
              Kernel6x16Avx2(kc, ar, bp, out, ldo, acc);
            }
            break;
          case GemmIsa::kPortable:
            Kernel6x16Portable(kc, ar, bp, out, ldo, acc);
            break;
        }
        if (full) continue;
        // Edge tile: copy the valid part of the result.
        for (int i = 0; i < rows; ++i) {
          for (int j = 0; j < cols; ++j) {
            float v = edge[i * kEdgeCols + j];
            cp[i * g.ldc + j] = accumulate ? cp[i * g.ldc + j] + v : v;
          }
        }
      }
      j0 += width;
    }
  }
  if (g.epilogue == Epilogue::kNone) return;
  const int cols = std::min(nc, g.n - n0);
  for (int i = 0; i < mc; ++i) {
    float* row = g.c + static_cast<size_t>(m0 + i) * g.ldc + n0;
    const float* bias = g.bias + n0;
    for (int j = 0; j < cols; ++j) row[j] += bias[j];
    if (g.epilogue == Epilogue::kBiasGelu) GeluInPlace(row, static_cast<size_t>(cols));
  }
}

}  // namespace

void AlignedFree::operator()(float* p) const { std::free(p); }

AlignedFloats AllocateFloats(size_t count) {
  size_t bytes = ((std::max<size_t>(count, 1) * sizeof(float) + 63) / 64) * 64;
  return AlignedFloats(static_cast<float*>(std::aligned_alloc(64, bytes)));
}

GemmIsa ActiveGemmIsa() { return ActiveIsa().load(std::memory_order_relaxed); }

GemmIsa SetGemmIsa(GemmIsa isa) {
  const GemmIsa best = DetectIsa();
  if (static_cast<int>(isa) > static_cast<int>(best)) isa = best;
  ActiveIsa().store(isa, std::memory_order_relaxed);
  return isa;
}

const char* GemmIsaName(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::kAvx512:
      return "avx512";
    case GemmIsa::kAvx2:
      return "avx2";
    case GemmIsa::kPortable:
      return "portable";
  }
  return "portable";
}

void PackBTransposed(const float* src, size_t ld, int n, int k, float* out) {
  for (int j0 = 0; j0 < n; j0 += kGemmNr) {
    const int cols = std::min(kGemmNr, n - j0);
    float* panel = out + static_cast<size_t>(j0 / kGemmNr) * k * kGemmNr;
    if (cols < kGemmNr) std::memset(panel, 0, sizeof(float) * static_cast<size_t>(k) * kGemmNr);
    for (int j = 0; j < cols; ++j) {
      const float* row = src + static_cast<size_t>(j0 + j) * ld;
      for (int p = 0; p < k; ++p) panel[static_cast<size_t>(p) * kGemmNr + j] = row[p];
    }
  }
}

void PackB(const float* src, size_t ld, int k, int n, float* out) {
  for (int j0 = 0; j0 < n; j0 += kGemmNr) {
    const int cols = std::min(kGemmNr, n - j0);
    float* panel = out + static_cast<size_t>(j0 / kGemmNr) * k * kGemmNr;
    for (int p = 0; p < k; ++p) {
      const float* row = src + static_cast<size_t>(p) * ld + j0;
      float* dst = panel + static_cast<size_t>(p) * kGemmNr;
      std::memcpy(dst, row, sizeof(float) * static_cast<size_t>(cols));
      for (int j = cols; j < kGemmNr; ++j) dst[j] = 0.0f;
    }
  }
}

WeightArena::WeightArena(size_t floats) {
  constexpr size_t kHugePage = size_t{2} << 20;
  const size_t bytes = (floats * sizeof(float) + kHugePage - 1) / kHugePage * kHugePage;
  if (bytes == 0) return;
  // Over-map by one huge page, then trim both ends so the block starts on a 2 MiB boundary.
  void* raw =
      mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return;
  const auto start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = start + bytes + kHugePage;
  if (end > aligned + bytes)
    munmap(reinterpret_cast<void*>(aligned + bytes), end - aligned - bytes);
  base_ = reinterpret_cast<void*>(aligned);
  bytes_ = bytes;
  (void)madvise(base_, bytes_, MADV_HUGEPAGE);  // advice only: ordinary pages when refused
}

WeightArena::~WeightArena() {
  if (base_ != nullptr) munmap(base_, bytes_);
}

float* WeightArena::Take(size_t floats) {
  const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
  if (base_ == nullptr || bytes > bytes_ - used_) return nullptr;
  float* p = reinterpret_cast<float*>(static_cast<char*>(base_) + used_);
  used_ += bytes;
  return p;
}

PackedWeight PackWeight(const float* weight, int n, int k, std::vector<float> bias,
                        WeightArena* arena) {
  PackedWeight w;
  w.n = n;
  w.k = k;
  const size_t size = PackedBSize(k, n);
  w.data = arena != nullptr ? arena->Take(size) : nullptr;
  if (w.data == nullptr) {
    w.storage = AllocateFloats(size);
    w.data = w.storage.get();
  }
  PackBTransposed(weight, static_cast<size_t>(k), n, k, w.data);
  w.bias = std::move(bias);
  return w;
}

void Gemm(int m, int n, int k, const float* a, size_t lda, const float* packed_b, float* c,
          size_t ldc, Epilogue epilogue, const float* bias, ThreadPool* pool) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (int i = 0; i < m; ++i) std::memset(c + static_cast<size_t>(i) * ldc, 0, sizeof(float) * n);
    return;
  }
  GemmArgs g{m, n, k, a, lda, packed_b, c, ldc, epilogue, bias};
  // Few columns (at most 4 panels, e.g. P·V with n = head_dim): each A element feeds at most 64
  // outputs, so packing A (~1 element per cycle) would cost about half the arithmetic; read it in
  // place instead.
  g.direct_a = ActiveGemmIsa() != GemmIsa::kPortable && n <= 4 * kGemmNr;
  // Row blocks of equal height (a multiple of kGemmMr, at most kGemmMc).
  const int m_blocks = (m + kGemmMc - 1) / kGemmMc;
  const int mc =
      std::min(kGemmMc, ((m + m_blocks - 1) / m_blocks + kGemmMr - 1) / kGemmMr * kGemmMr);
  const int n_panels = (n + kGemmNr - 1) / kGemmNr;
  const int threads = pool != nullptr ? pool->size() : 1;
  // Column blocks: enough tiles for every thread (at least 4 each, and a multiple of the thread
  // count when possible, so no thread idles at the end), each >= 4 panels wide so a packed A block
  // is reused across many columns.
  int n_blocks = 1;
  if (threads > 1) {
    const int max_blocks = std::max(1, n_panels / 4);
    double best = 0;
    for (int nb = 1; nb <= max_blocks; ++nb) {
      const int ppb = (n_panels + nb - 1) / nb;
      const int blocks = (n_panels + ppb - 1) / ppb;
      const int tiles = m_blocks * blocks;
      const int rounds = (tiles + threads - 1) / threads;
      const double balance = static_cast<double>(tiles) / (rounds * threads);
      const double score = balance - (tiles < 4 * threads ? 0.5 : 0.0);
      if (score > best + 1e-9) {
        best = score;
        n_blocks = nb;
      }
      if (balance == 1.0 && tiles >= 4 * threads) break;
    }
  }
  int panels_per_block = (n_panels + n_blocks - 1) / n_blocks;
  // The AVX-512 kernel takes panels in pairs: an even block width leaves no single-panel calls.
  if (ActiveGemmIsa() == GemmIsa::kAvx512 && panels_per_block % 2 == 1 &&
      panels_per_block < n_panels) {
    ++panels_per_block;
  }
  n_blocks = (n_panels + panels_per_block - 1) / panels_per_block;
  const size_t tiles = static_cast<size_t>(m_blocks) * n_blocks;
  // With several column blocks per row block, pack A once up front (in parallel) instead of once
  // per tile: packing is a transpose at about one element per cycle. Not for a few rows (a short
  // request), where streaming B dominates and the extra parallel loop would cost more.
  const int k_blocks = (k + kGemmKc - 1) / kGemmKc;
  if (n_blocks > 1 && m >= 32 && !g.direct_a) {
    thread_local AlignedFloats shared_pack;
    thread_local size_t capacity = 0;
    const size_t need = static_cast<size_t>(m_blocks) * k_blocks * mc * kGemmKc;
    if (capacity < need) {
      shared_pack = AllocateFloats(need);
      capacity = need;
    }
    // A plain pointer: inside the lambda `shared_pack` would name the worker's thread_local.
    float* const packed = shared_pack.get();
    g.packed_a = packed;
    g.block_rows = mc;
    auto pack = [&](size_t t) {
      const int mb = static_cast<int>(t) / k_blocks;
      const int kb = static_cast<int>(t) % k_blocks;
      const int m0 = mb * mc;
      if (m0 >= m) return;
      const int k0 = kb * kGemmKc;
      PackA(a + static_cast<size_t>(m0) * lda + k0, lda, std::min(mc, m - m0),
            std::min(kGemmKc, k - k0), packed + t * static_cast<size_t>(mc) * kGemmKc);
    };
    const size_t pack_tasks = static_cast<size_t>(m_blocks) * k_blocks;
    if (pool == nullptr) {
      for (size_t t = 0; t < pack_tasks; ++t) pack(t);
    } else {
      pool->ParallelFor(pack_tasks, pack);
    }
  }
  auto run = [&](size_t t) {
    const int mb = static_cast<int>(t) / n_blocks;
    const int nb = static_cast<int>(t) % n_blocks;
    const int m0 = mb * mc;
    const int n0 = nb * panels_per_block * kGemmNr;
    const int nc = std::min(panels_per_block * kGemmNr, n - n0);
    if (m0 < m) GemmTile(g, m0, std::min(mc, m - m0), n0, nc);
  };
  if (pool == nullptr || tiles == 1) {
    for (size_t t = 0; t < tiles; ++t) run(t);
  } else {
    pool->ParallelFor(tiles, run);
  }
}

}  // namespace atrium::infer::cpu
