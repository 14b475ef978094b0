#include "cpu/vector_math.h"

#include "cpu/simd_math.h"  // first: it includes <immintrin.h>

#include <algorithm>
#include <cmath>

#include "cpu/gemm.h"

namespace atrium::infer::cpu {
namespace {

// exp(x) for 8 lanes (Cephes polynomial, range-reduced by ln 2).
__attribute__((target("avx2,fma"))) inline __m256 Exp8(__m256 x) {
  x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.3365447505531f));
  __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500E-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

// erf(x) for 8 lanes: Abramowitz & Stegun 7.1.26 refined is not accurate enough at fp32, so use
// the W. J. Cody-style split: a rational fit near 0 and 1 - exp(-x²)·poly(t) beyond.
__attribute__((target("avx2,fma"))) inline __m256 Erf8(__m256 x) {
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  __m256 sign = _mm256_and_ps(x, sign_mask);
  __m256 ax = _mm256_andnot_ps(sign_mask, x);
  ax = _mm256_min_ps(ax, _mm256_set1_ps(4.0f));
  // Small |x| (< 0.84375): erf(x) = x + x·P(x²)/Q(x²) (fdlibm s_erf.c, fp32 coefficients).
  __m256 z = _mm256_mul_ps(ax, ax);
  __m256 r = _mm256_set1_ps(-2.37630166566501626084e-05f);
  r = _mm256_fmadd_ps(r, z, _mm256_set1_ps(-5.77027029648944159157e-03f));
  r = _mm256_fmadd_ps(r, z, _mm256_set1_ps(-2.84817495755985104766e-02f));
  r = _mm256_fmadd_ps(r, z, _mm256_set1_ps(-3.25042107247001499370e-01f));
  r = _mm256_fmadd_ps(r, z, _mm256_set1_ps(1.28379167095512558561e-01f));
  __m256 s = _mm256_set1_ps(-3.96022827877536812320e-06f);
  s = _mm256_fmadd_ps(s, z, _mm256_set1_ps(1.32494738004321644526e-04f));
  s = _mm256_fmadd_ps(s, z, _mm256_set1_ps(5.08130628187576562776e-03f));
  s = _mm256_fmadd_ps(s, z, _mm256_set1_ps(6.50222499887672944485e-02f));
  s = _mm256_fmadd_ps(s, z, _mm256_set1_ps(3.97917223959155352819e-01f));
  s = _mm256_fmadd_ps(s, z, _mm256_set1_ps(1.0f));
  __m256 small = _mm256_fmadd_ps(ax, _mm256_div_ps(r, s), ax);
  // Larger |x|: erf(x) = 1 - t·exp(-z² + P(t)) with t = 1/(1 + 0.5|x|) (Numerical Recipes erfc,
  // relative error < 1.2e-7).
  __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f),
                           _mm256_fmadd_ps(_mm256_set1_ps(0.5f), ax, _mm256_set1_ps(1.0f)));
  __m256 p = _mm256_set1_ps(0.17087277f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
  __m256 erfc = _mm256_mul_ps(t, Exp8(_mm256_sub_ps(p, z)));
  __m256 large = _mm256_sub_ps(_mm256_set1_ps(1.0f), erfc);
  __m256 use_small = _mm256_cmp_ps(ax, _mm256_set1_ps(0.84375f), _CMP_LT_OQ);
  __m256 result = _mm256_blendv_ps(large, small, use_small);
  return _mm256_or_ps(result, sign);
}

__attribute__((target("avx2,fma"))) void GeluAvx2(float* x, size_t n) {
  const __m256 inv_sqrt2 = _mm256_set1_ps(0.70710678118654752f);
  const __m256 half = _mm256_set1_ps(0.5f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m256 e = Erf8(_mm256_mul_ps(v, inv_sqrt2));
    __m256 hv = _mm256_mul_ps(half, v);
    _mm256_storeu_ps(x + i, _mm256_fmadd_ps(hv, e, hv));
  }
  for (; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
}

__attribute__((target("avx2,fma"))) float HorizontalMax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

__attribute__((target("avx2,fma"))) float SoftmaxNumeratorsAvx2(float* x, size_t n) {
  // The row maximum in lanes (a scalar max chain costs more than the exponentials).
  __m256 vmax = _mm256_set1_ps(-INFINITY);
  size_t m = 0;
  for (; m + 8 <= n; m += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + m));
  float mx = HorizontalMax(vmax);
  for (; m < n; ++m) mx = std::max(mx, x[m]);
  const __m256 vmx = _mm256_set1_ps(mx);
  __m256 acc = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = Exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmx));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  double sum = 0;
  for (float l : lanes) sum += l;
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  return static_cast<float>(sum);
}

__attribute__((target("avx2,fma"))) void ScaleAvx2(float* x, size_t n, float s) {
  const __m256 v = _mm256_set1_ps(s);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), v));
  for (; i < n; ++i) x[i] *= s;
}

__attribute__((target("avx2,fma"))) float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Two passes (sum, then squared deviations) in fp32 lanes of 8: rows are at most a few thousand
// features, so the lane sums stay accurate to ~1e-7 relative.
__attribute__((target("avx2,fma"))) void ResidualLayerNormAvx2(float* x, const float* residual,
                                                               const float* gamma,
                                                               const float* beta, size_t n,
                                                               float eps) {
  size_t i = 0;
  __m256 acc = _mm256_setzero_ps();
  float tail = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    if (residual != nullptr) {
      v = _mm256_add_ps(v, _mm256_loadu_ps(residual + i));
      _mm256_storeu_ps(x + i, v);
    }
    acc = _mm256_add_ps(acc, v);
  }
  for (; i < n; ++i) {
    if (residual != nullptr) x[i] += residual[i];
    tail += x[i];
  }
  const float mean = (HorizontalSum(acc) + tail) / static_cast<float>(n);
  const __m256 vmean = _mm256_set1_ps(mean);
  __m256 sq = _mm256_setzero_ps();
  float sq_tail = 0;
  for (i = 0; i + 8 <= n; i += 8) {
    __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), vmean);
    sq = _mm256_fmadd_ps(d, d, sq);
  }
  for (; i < n; ++i) sq_tail += (x[i] - mean) * (x[i] - mean);
  const float var = (HorizontalSum(sq) + sq_tail) / static_cast<float>(n);
  const float inv = 1.0f / std::sqrt(var + eps);
  const __m256 vinv = _mm256_set1_ps(inv);
  for (i = 0; i + 8 <= n; i += 8) {
    __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmean), vinv);
    _mm256_storeu_ps(x + i,
                     _mm256_fmadd_ps(d, _mm256_loadu_ps(gamma + i), _mm256_loadu_ps(beta + i)));
  }
  for (; i < n; ++i) x[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
}

// The AVX-512 forms of the same kernels (exp and erf from simd_math.h), 16 lanes at a time,
// tails under a lane mask (no scalar remainder loop).

// Lanes [0, n - i) of a 16-lane step at i, for the tail.
__attribute__((target("avx512f"))) inline __mmask16 TailMask(size_t remaining) {
  return remaining >= 16 ? static_cast<__mmask16>(0xFFFF)
                         : static_cast<__mmask16>((1u << remaining) - 1);
}

__attribute__((target("avx512f"))) void GeluAvx512(float* x, size_t n) {
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = TailMask(n - i);
    _mm512_mask_storeu_ps(x + i, k, Gelu16(_mm512_maskz_loadu_ps(k, x + i)));
  }
}

__attribute__((target("avx512f"))) float SoftmaxNumeratorsAvx512(float* x, size_t n) {
  if (n == 0) return 0.0f;
  // Two chains each for the max and the sum: the row is short, the chains' latency is what costs.
  __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + i));
    m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x + i + 16));
  }
  for (; i < n; i += 16) {
    const __mmask16 k = TailMask(n - i);
    m0 = _mm512_mask_max_ps(m0, k, m0, _mm512_maskz_loadu_ps(k, x + i));
  }
  const __m512 vmx = _mm512_set1_ps(_mm512_reduce_max_ps(_mm512_max_ps(m0, m1)));
  __m512 s0 = _mm512_setzero_ps(), s1 = s0;
  for (i = 0; i + 32 <= n; i += 32) {
    __m512 e0 = Exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), vmx));
    __m512 e1 = Exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), vmx));
    _mm512_storeu_ps(x + i, e0);
    _mm512_storeu_ps(x + i + 16, e1);
    s0 = _mm512_add_ps(s0, e0);
    s1 = _mm512_add_ps(s1, e1);
  }
  for (; i < n; i += 16) {
    const __mmask16 k = TailMask(n - i);
    __m512 e = Exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vmx));
    _mm512_mask_storeu_ps(x + i, k, e);
    s0 = _mm512_mask_add_ps(s0, k, s0, e);
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, _mm512_add_ps(s0, s1));
  double sum = 0;
  for (float l : lanes) sum += l;
  return static_cast<float>(sum);
}

__attribute__((target("avx512f"))) void ScaleAvx512(float* x, size_t n, float s) {
  const __m512 v = _mm512_set1_ps(s);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = TailMask(n - i);
    _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), v));
  }
}

__attribute__((target("avx512f"))) void ResidualLayerNormAvx512(float* x, const float* residual,
                                                                const float* gamma,
                                                                const float* beta, size_t n,
                                                                float eps) {
  __m512 acc = _mm512_setzero_ps();
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = TailMask(n - i);
    __m512 v = _mm512_maskz_loadu_ps(k, x + i);
    if (residual != nullptr) {
      v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, residual + i));
      _mm512_mask_storeu_ps(x + i, k, v);
    }
    acc = _mm512_add_ps(acc, v);
  }
  const float mean = _mm512_reduce_add_ps(acc) / static_cast<float>(n);
  const __m512 vmean = _mm512_set1_ps(mean);
  __m512 sq = _mm512_setzero_ps();
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = TailMask(n - i);
    __m512 d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, x + i), vmean);
    sq = _mm512_fmadd_ps(d, d, sq);
  }
  const float var = _mm512_reduce_add_ps(sq) / static_cast<float>(n);
  const __m512 vinv = _mm512_set1_ps(1.0f / std::sqrt(var + eps));
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = TailMask(n - i);
    __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vmean), vinv);
    _mm512_mask_storeu_ps(x + i, k,
                          _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(k, gamma + i),
                                          _mm512_maskz_loadu_ps(k, beta + i)));
  }
}

}  // namespace

void GeluInPlace(float* x, size_t n) {
  switch (ActiveGemmIsa()) {
    case GemmIsa::kAvx512:
      return GeluAvx512(x, n);
    case GemmIsa::kAvx2:
      return GeluAvx2(x, n);
    case GemmIsa::kPortable:
      break;
  }
  for (size_t i = 0; i < n; ++i)
    x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
}

float SoftmaxNumerators(float* x, size_t n) {
  switch (ActiveGemmIsa()) {
    case GemmIsa::kAvx512:
      return SoftmaxNumeratorsAvx512(x, n);
    case GemmIsa::kAvx2:
      return SoftmaxNumeratorsAvx2(x, n);
    case GemmIsa::kPortable:
      break;
  }
  float mx = -INFINITY;
  for (size_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  return static_cast<float>(sum);
}

void Scale(float* x, size_t n, float s) {
  switch (ActiveGemmIsa()) {
    case GemmIsa::kAvx512:
      return ScaleAvx512(x, n, s);
    case GemmIsa::kAvx2:
      return ScaleAvx2(x, n, s);
    case GemmIsa::kPortable:
      break;
  }
  for (size_t i = 0; i < n; ++i) x[i] *= s;
}

void SoftmaxInPlace(float* x, size_t n) { Scale(x, n, 1.0f / SoftmaxNumerators(x, n)); }

void ResidualLayerNorm(float* x, const float* residual, const float* gamma, const float* beta,
                       size_t n, float eps) {
  switch (ActiveGemmIsa()) {
    case GemmIsa::kAvx512:
      return ResidualLayerNormAvx512(x, residual, gamma, beta, n, eps);
    case GemmIsa::kAvx2:
      return ResidualLayerNormAvx2(x, residual, gamma, beta, n, eps);
    case GemmIsa::kPortable:
      break;
  }
  if (residual != nullptr) {
    for (size_t i = 0; i < n; ++i) x[i] += residual[i];
  }
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += x[i];
  const double mean = sum / static_cast<double>(n);
  double sq = 0;
  for (size_t i = 0; i < n; ++i) {
    double d = x[i] - mean;
    sq += d * d;
  }
  const float inv = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(n) + eps));
  const float m = static_cast<float>(mean);
  for (size_t i = 0; i < n; ++i) x[i] = (x[i] - m) * inv * gamma[i] + beta[i];
}

}  // namespace atrium::infer::cpu
