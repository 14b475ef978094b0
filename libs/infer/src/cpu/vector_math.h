// Element-wise kernels of the CPU engine: erf GELU, softmax, residual + LayerNorm. Each has an
// AVX2/FMA path (run-time dispatch) and a portable one; the AVX2 exp/erf approximations are
// accurate to a few fp32 ulps (relative error < 2e-7), well inside the engine's parity bound.
#pragma once

#include <cstddef>

namespace atrium::infer::cpu {

// x ← x · Φ(x) = 0.5 · x · (1 + erf(x / √2)), the GELU BERT uses.
void GeluInPlace(float* x, size_t n);

// x ← softmax(x).
void SoftmaxInPlace(float* x, size_t n);

// x ← exp(x − max x), returning Σ x: softmax's numerators, for a caller that divides later (by
// scaling a product of x instead of x itself).
float SoftmaxNumerators(float* x, size_t n);

// x ← s · x.
void Scale(float* x, size_t n, float s);

// x ← LayerNorm(x + residual) · gamma + beta over n features (residual may be null).
void ResidualLayerNorm(float* x, const float* residual, const float* gamma, const float* beta,
                       size_t n, float eps);

}  // namespace atrium::infer::cpu
