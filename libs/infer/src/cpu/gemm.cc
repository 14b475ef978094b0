#include "cpu/gemm.h"

#include "cpu/simd_math.h"  // first: it includes <immintrin.h>

#include <sys/mman.h>

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

// The AVX-512 kernels' epilogue, fused: the first K block starts its accumulators from the bias
// (when given), the last one applies GELU in registers before the store (when asked), so the
// bias and the activation cost no extra pass over C.
struct FusedEpilogue {
  const float* bias = nullptr;  // the tile's first column of the bias, or null
  bool gelu = false;
};

// How far ahead (floats) a B-streaming kernel prefetches each panel: 48 steps of 64 bytes.
constexpr int kStreamAhead = 48 * kGemmNr;

// AVX-512: two adjacent 16-column panels per call (b0 and b1, each kc × 16), 12 zmm accumulators.
// Per step 2 loads of B and 6 broadcasts of A feed 12 FMAs, so the FMA ports, not the loads, bound
// it: twice the AVX2 kernel's arithmetic per cycle on cores with two 512-bit FMA units.
template <bool kDirect, bool kStreamB = false>
__attribute__((target("avx512f"))) inline void Kernel6x32Avx512Impl(
    int kc, const float* a, size_t lda, int rows, const float* b0, const float* b1, float* c,
    size_t ldc, bool accumulate, FusedEpilogue epilogue) {
  // Direct A: the rows in place (missing rows repeat the last one; their results are discarded).
  const float* r[kGemmMr];
  for (int i = 0; i < kGemmMr; ++i) r[i] = a + (kDirect ? std::min(i, rows - 1) * lda : 0);
  // The tile of C is written (or read) after the K loop: start fetching its lines now.
  for (int i = 0; i < kGemmMr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + kGemmNr), _MM_HINT_T0);
  }
  const __m512 init0 = epilogue.bias ? _mm512_loadu_ps(epilogue.bias) : _mm512_setzero_ps();
  const __m512 init1 =
      epilogue.bias ? _mm512_loadu_ps(epilogue.bias + kGemmNr) : _mm512_setzero_ps();
  __m512 acc0[kGemmMr], acc1[kGemmMr];
  for (int i = 0; i < kGemmMr; ++i) {
    acc0[i] = init0;
    acc1[i] = init1;
  }
#pragma GCC unroll 4
  for (int p = 0; p < kc; ++p) {
    if constexpr (kStreamB) {
      // Few rows: the product streams B from memory once, so ask for it well ahead (to L2, whose
      // queue is deeper than L1's), past the 4 KiB boundaries where the hardware streamer stops.
      _mm_prefetch(reinterpret_cast<const char*>(b0 + kStreamAhead), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(b1 + kStreamAhead), _MM_HINT_T1);
    }
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
    if (epilogue.gelu) {
      acc0[i] = Gelu16(acc0[i]);
      acc1[i] = Gelu16(acc1[i]);
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
                                                                    size_t ldc, bool accumulate,
                                                                    FusedEpilogue epilogue) {
  // Direct A: the rows in place (missing rows repeat the last one; their results are discarded).
  const float* r[kGemmMr];
  for (int i = 0; i < kGemmMr; ++i) r[i] = a + (kDirect ? std::min(i, rows - 1) * lda : 0);
  const __m512 init = epilogue.bias ? _mm512_loadu_ps(epilogue.bias) : _mm512_setzero_ps();
  __m512 acc[kGemmMr];
  for (int i = 0; i < kGemmMr; ++i) acc[i] = init;
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
    if (epilogue.gelu) acc[i] = Gelu16(acc[i]);
    _mm512_storeu_ps(row, acc[i]);
  }
}

__attribute__((target("avx512f"))) void Kernel6x32Avx512(int kc, const float* a, const float* b0,
                                                         const float* b1, float* c, size_t ldc,
                                                         bool accumulate, FusedEpilogue e) {
  Kernel6x32Avx512Impl<false>(kc, a, 0, kGemmMr, b0, b1, c, ldc, accumulate, e);
}
__attribute__((target("avx512f"))) void KernelStream6x32Avx512(int kc, const float* a,
                                                               const float* b0, const float* b1,
                                                               float* c, size_t ldc,
                                                               bool accumulate, FusedEpilogue e) {
  Kernel6x32Avx512Impl<false, true>(kc, a, 0, kGemmMr, b0, b1, c, ldc, accumulate, e);
}
__attribute__((target("avx512f"))) void KernelDirect6x32Avx512(int kc, const float* a, size_t lda,
                                                               int rows, const float* b0,
                                                               const float* b1, float* c,
                                                               size_t ldc, bool accumulate,
                                                               FusedEpilogue e) {
  Kernel6x32Avx512Impl<true>(kc, a, lda, rows, b0, b1, c, ldc, accumulate, e);
}
__attribute__((target("avx512f"))) void Kernel6x16Avx512(int kc, const float* a, const float* b,
                                                         float* c, size_t ldc, bool accumulate,
                                                         FusedEpilogue e) {
  Kernel6x16Avx512Impl<false>(kc, a, 0, kGemmMr, b, c, ldc, accumulate, e);
}
__attribute__((target("avx512f"))) void KernelDirect6x16Avx512(int kc, const float* a, size_t lda,
                                                               int rows, const float* b, float* c,
                                                               size_t ldc, bool accumulate,
                                                               FusedEpilogue e) {
  Kernel6x16Avx512Impl<true>(kc, a, lda, rows, b, c, ldc, accumulate, e);
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

// out[p·16 + j] = src[j·ld + p] for a 16 × 16 block: four rounds of two-source permutes, each
// swapping the off-diagonal sub-blocks of size s (8, 4, 2, 1) between row pairs (i, i + s).
__attribute__((target("avx512f"))) void Transpose16x16Avx512(const float* src, size_t ld,
                                                             float* out) {
  static const struct Plan {
    alignas(64) int32_t low[4][16];   // [round]: row i's new lanes
    alignas(64) int32_t high[4][16];  // row i + s's
    Plan() {
      for (int round = 0, s = 8; s >= 1; ++round, s /= 2) {
        for (int c = 0; c < 16; ++c) {
          low[round][c] = (c & s) == 0 ? c : 16 + c - s;
          high[round][c] = (c & s) == 0 ? c + s : 16 + c;
        }
      }
    }
  } plan;
  __m512 r[16];
  for (int j = 0; j < 16; ++j) r[j] = _mm512_loadu_ps(src + static_cast<size_t>(j) * ld);
  for (int round = 0, s = 8; s >= 1; ++round, s /= 2) {
    const __m512i low = _mm512_load_si512(plan.low[round]);
    const __m512i high = _mm512_load_si512(plan.high[round]);
    for (int i = 0; i < 16; ++i) {
      if ((i & s) != 0) continue;
      const __m512 a = r[i], b = r[i + s];
      r[i] = _mm512_permutex2var_ps(a, low, b);
      r[i + s] = _mm512_permutex2var_ps(a, high, b);
    }
  }
  for (int p = 0; p < 16; ++p) _mm512_storeu_ps(out + 16 * p, r[p]);
}

// k rows of `cols` (≤ 16) floats at stride ld into a zero-padded panel of k × 16.
__attribute__((target("avx512f"))) void CopyRows16Avx512(const float* src, size_t ld, int k,
                                                         int cols, float* out) {
  const __mmask16 mask = static_cast<__mmask16>((1u << cols) - 1);
  for (int p = 0; p < k; ++p) {
    _mm512_storeu_ps(out + static_cast<size_t>(p) * kGemmNr,
                     _mm512_maskz_loadu_ps(mask, src + static_cast<size_t>(p) * ld));
  }
}

// Interleaves 16 columns of 6 rows (r[i] + p0) into out[0, 96) as out[p·6 + i]: each of the six
// output vectors gathers its lanes from the six rows with masked permutes (36 in all, about one
// per cycle), where the scalar transpose takes one load and one store per element.
__attribute__((target("avx512f"))) void Interleave6x16Avx512(const float* const* r, int p0,
                                                             float* out) {
  alignas(64) static const struct Plan {
    int32_t index[6][16];
    uint16_t mask[6][6];  // [output vector][row]
    Plan() : index(), mask() {
      for (int f = 0; f < 96; ++f) {
        index[f / 16][f % 16] = f / kGemmMr;
        mask[f / 16][f % kGemmMr] |= static_cast<uint16_t>(1u << (f % 16));
      }
    }
  } plan;
  __m512 rows[kGemmMr];
  for (int i = 0; i < kGemmMr; ++i) rows[i] = _mm512_loadu_ps(r[i] + p0);
  for (int t = 0; t < kGemmMr; ++t) {
    const __m512i index = _mm512_load_si512(plan.index[t]);
    __m512 v = _mm512_setzero_ps();
    for (int i = 0; i < kGemmMr; ++i)
      v = _mm512_mask_permutexvar_ps(v, plan.mask[t][i], index, rows[i]);
    _mm512_storeu_ps(out + 16 * t, v);
  }
}

// Packs rows [0, mc) × cols [0, kc) of a (stride lda) into 6-row micro-panels, zero-padding the
// last one.
void PackA(const float* a, size_t lda, int mc, int kc, float* out) {
  const bool avx512 = ActiveIsa().load(std::memory_order_relaxed) == GemmIsa::kAvx512;
  for (int i0 = 0; i0 < mc; i0 += kGemmMr) {
    const int rows = std::min(kGemmMr, mc - i0);
    if (rows == kGemmMr) {
      const float* r[kGemmMr];
      for (int i = 0; i < kGemmMr; ++i) r[i] = a + static_cast<size_t>(i0 + i) * lda;
      int p = 0;
      if (avx512) {
        for (; p + 16 <= kc; p += 16, out += 16 * kGemmMr) Interleave6x16Avx512(r, p, out);
      }
      for (; p < kc; ++p) {
        for (int i = 0; i < kGemmMr; ++i) out[i] = r[i][p];
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
  // The AVX-512 kernels apply the epilogue themselves (FusedEpilogue); the others get a pass over
  // the tile at the end.
  const bool fused = isa == GemmIsa::kAvx512 && g.epilogue != Epilogue::kNone;
  // A few rows (a short request): each B panel feeds at most two micro-panels, so the product is
  // bound by streaming B from memory, not by arithmetic.
  const bool stream_b = mc <= 2 * kGemmMr;
  for (int k0 = 0; k0 < g.k; k0 += kGemmKc) {
    const int kc = std::min(kGemmKc, g.k - k0);
    const bool accumulate = k0 > 0;
    const bool last = k0 + kc >= g.k;
    const bool gelu = fused && last && g.epilogue == Epilogue::kBiasGelu;
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
        // The kernel reads `width` bias values: only where the tile has that many columns (the
        // bias has n); an edge tile's partial sums get theirs in the copy below. GELU only on a
        // full tile's final sums.
        const FusedEpilogue fe{fused && k0 == 0 && cols == width ? g.bias + j0 : nullptr,
                               gelu && full};
        switch (isa) {
          case GemmIsa::kAvx512:
            if (g.direct_a && pair) {
              KernelDirect6x32Avx512(kc, ar, g.lda, rows, bp, bp + panel_stride, out, ldo, acc, fe);
            } else if (g.direct_a) {
              KernelDirect6x16Avx512(kc, ar, g.lda, rows, bp, out, ldo, acc, fe);
            } else if (pair && stream_b) {
              KernelStream6x32Avx512(kc, ar, bp, bp + panel_stride, out, ldo, acc, fe);
            } else if (pair) {
              Kernel6x32Avx512(kc, ar, bp, bp + panel_stride, out, ldo, acc, fe);
            } else {
              Kernel6x16Avx512(kc, ar, bp, out, ldo, acc, fe);
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
        // Edge tile: copy the valid part of the result (with the fused epilogue's remainder).
        const bool add_bias = fused && k0 == 0 && fe.bias == nullptr;
        for (int i = 0; i < rows; ++i) {
          float* dst = cp + i * g.ldc;
          for (int j = 0; j < cols; ++j) {
            float v = edge[i * kEdgeCols + j] + (add_bias ? g.bias[j0 + j] : 0.0f);
            dst[j] = accumulate ? dst[j] + v : v;
          }
          if (gelu) GeluInPlace(dst, static_cast<size_t>(cols));
        }
      }
      j0 += width;
    }
  }
  if (g.epilogue == Epilogue::kNone || fused) return;
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
  const bool avx512 = ActiveIsa().load(std::memory_order_relaxed) == GemmIsa::kAvx512;
  for (int j0 = 0; j0 < n; j0 += kGemmNr) {
    const int cols = std::min(kGemmNr, n - j0);
    float* panel = out + static_cast<size_t>(j0 / kGemmNr) * k * kGemmNr;
    const float* rows = src + static_cast<size_t>(j0) * ld;
    int p0 = 0;
    if (avx512 && cols == kGemmNr) {
      for (; p0 + kGemmNr <= k; p0 += kGemmNr) {
        Transpose16x16Avx512(rows + p0, ld, panel + static_cast<size_t>(p0) * kGemmNr);
      }
    }
    if (p0 == k) continue;
    if (cols < kGemmNr) std::memset(panel, 0, sizeof(float) * static_cast<size_t>(k) * kGemmNr);
    for (int j = 0; j < cols; ++j) {
      const float* row = rows + static_cast<size_t>(j) * ld;
      for (int p = p0; p < k; ++p) panel[static_cast<size_t>(p) * kGemmNr + j] = row[p];
    }
  }
}

void PackB(const float* src, size_t ld, int k, int n, float* out) {
  const bool avx512 = ActiveIsa().load(std::memory_order_relaxed) == GemmIsa::kAvx512;
  for (int j0 = 0; j0 < n; j0 += kGemmNr) {
    const int cols = std::min(kGemmNr, n - j0);
    float* panel = out + static_cast<size_t>(j0 / kGemmNr) * k * kGemmNr;
    if (avx512) {
      CopyRows16Avx512(src + j0, ld, k, cols, panel);
      continue;
    }
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
