// AVX-512 exp and GELU on 16 lanes, shared by the element-wise kernels (vector_math.cc) and the
// GEMM's fused epilogue (gemm.cc). Cheaper than the AVX2 forms (scalef instead of exponent-field
// arithmetic, a five-term erf instead of two rational fits, no divisions) and as accurate where
// the engine uses them: softmax and GELU to a few fp32 ulps, inside the engine's parity bound.
// Include this before anything that includes <immintrin.h>.
#pragma once

// GCC 12's AVX-512 headers pass a self-initialised "undefined" vector to the unmasked forms
// (_mm512_min_ps, _mm512_roundscale_ps, ...), which -Wuninitialized reports at the header's lines
// once they are inlined: a false positive, silenced for the header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

namespace atrium::infer::cpu {

// 1/x: rcp14 (relative error < 2⁻¹⁴) and one Newton-Raphson step (< 2⁻²³ or so).
__attribute__((target("avx512f"), always_inline)) inline __m512 Reciprocal16(__m512 x) {
  const __m512 r = _mm512_rcp14_ps(x);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(x, r, _mm512_set1_ps(2.0f)));
}

// exp(x) for x ≤ 88: Cephes' polynomial on x − n·ln 2, then scalef multiplies by 2ⁿ (no
// exponent-field arithmetic). Inputs below −87.3 give exp(−87.3), about 1e-38.
__attribute__((target("avx512f"), always_inline)) inline __m512 Exp16(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.3365447505531f));
  const __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
  __m512 y = _mm512_set1_ps(1.9875691500E-4f);
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894E-2f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459E-1f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201E-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, fx);
}

// x · Φ(x) = 0.5 · x · (1 + erf(u)), u = x/√2, from erfc(|u|) = t·P(t)·exp(−u²) with
// t = 1/(1 + p·|u|) (Abramowitz & Stegun 7.1.26, absolute error < 1.5e-7): 1 + erf(u) is
// erfc(|u|) for u < 0 (no cancellation) and 2 − erfc(|u|) otherwise. The result's absolute error
// is under 0.75e-7·|x| (1e-35 for x < −12.7).
__attribute__((target("avx512f"), always_inline)) inline __m512 Gelu16(__m512 v) {
  const __m512 u = _mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752f));
  // |u| ≤ 9: beyond, erfc is below fp32's resolution next to 2 and next to 0 GELU's value is
  // below 1e-35, and exp(−u²) would reach denormals, which cost a microcode assist per lane.
  const __m512 au = _mm512_min_ps(_mm512_abs_ps(u), _mm512_set1_ps(9.0f));
  const __m512 t =
      Reciprocal16(_mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), au, _mm512_set1_ps(1.0f)));
  __m512 p = _mm512_set1_ps(1.061405429f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
  const __m512 erfc = _mm512_mul_ps(
      _mm512_mul_ps(p, t), Exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), au), au)));
  const __mmask16 negative = _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 one_plus_erf =
      _mm512_mask_blend_ps(negative, _mm512_sub_ps(_mm512_set1_ps(2.0f), erfc), erfc);
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), one_plus_erf);
}

}  // namespace atrium::infer::cpu
