#include "cpu/vector_math.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

namespace atrium::infer::cpu {
namespace {

bool HasAvx2() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

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

__attribute__((target("avx2,fma"))) void SoftmaxAvx2(float* x, size_t n) {
  float mx = -INFINITY;
  for (size_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
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
  const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / sum));
  i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  for (; i < n; ++i) x[i] *= static_cast<float>(1.0 / sum);
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

}  // namespace

void GeluInPlace(float* x, size_t n) {
  if (HasAvx2()) return GeluAvx2(x, n);
  for (size_t i = 0; i < n; ++i)
    x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
}

void SoftmaxInPlace(float* x, size_t n) {
  if (HasAvx2()) return SoftmaxAvx2(x, n);
  float mx = -INFINITY;
  for (size_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (size_t i = 0; i < n; ++i) x[i] *= inv;
}

void ResidualLayerNorm(float* x, const float* residual, const float* gamma, const float* beta,
                       size_t n, float eps) {
  if (HasAvx2()) return ResidualLayerNormAvx2(x, residual, gamma, beta, n, eps);
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
