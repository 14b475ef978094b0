// Packed single-precision GEMM for the CPU engine: C[m×n] = A[m×k] · B[k×n] (+ bias, + GELU).
//
// B is packed once into panels of kGemmNr columns ([n/16][k][16], zero-padded on the right), the
// layout the microkernel streams; model weights are packed at load, attention operands per call.
// A is packed per block of kGemmMc × kGemmKc into kGemmMr-row micro-panels inside the call.
// The microkernel is 6×32 AVX-512 (two panels at once) or 6×16 AVX2/FMA, chosen at run time
// (__builtin_cpu_supports; ATRIUM_INFER_ISA=avx2|portable lowers it), with a portable fallback.
// Blocking: the A block stays in L2, the B micro-panels (kGemmKc × 16 or × 32) in L1.
//
// Thread safety: the functions are reentrant; scratch buffers are thread-local.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace atrium::infer::cpu {

class ThreadPool;

inline constexpr int kGemmMr = 6;
inline constexpr int kGemmNr = 16;
inline constexpr int kGemmKc = 256;
inline constexpr int kGemmMc = 192;

// 64-byte aligned float storage.
struct AlignedFree {
  void operator()(float* p) const;
};
using AlignedFloats = std::unique_ptr<float[], AlignedFree>;
AlignedFloats AllocateFloats(size_t count);

// Floats PackB* writes for a k × n matrix.
inline size_t PackedBSize(int k, int n) {
  return static_cast<size_t>((n + kGemmNr - 1) / kGemmNr) * kGemmNr * static_cast<size_t>(k);
}

// Packs B given as n rows of k (a Linear layer's weight [out × in], or K in Q·Kᵀ): B = srcᵀ.
void PackBTransposed(const float* src, size_t ld, int n, int k, float* out);
// Packs B given as k rows of n (V in P·V).
void PackB(const float* src, size_t ld, int k, int n, float* out);

// Memory for a model's packed weights: one block, 2 MiB aligned, that the kernel is asked to back
// with transparent huge pages (madvise(MADV_HUGEPAGE); honoured when THP is "madvise" or
// "always"). A short request reads every weight once; with 4 KiB pages that is one TLB miss per
// page (about ten thousand for MiniLM-L6, each a two-level walk under a hypervisor), with huge
// pages a few dozen. On the development VM this took a lone request after 200 ms of idleness from
// 9.7 to 6.9 ms, and a cold-cache one from 4.9 to 3.7 ms. Falls back to ordinary allocations
// when the block cannot be mapped.
class WeightArena {
 public:
  explicit WeightArena(size_t floats);  // capacity, in floats
  ~WeightArena();
  WeightArena(const WeightArena&) = delete;
  WeightArena& operator=(const WeightArena&) = delete;

  // `floats` of 64-byte aligned storage from the block, or nullptr when it is full or unmapped.
  float* Take(size_t floats);

 private:
  void* base_ = nullptr;
  size_t bytes_ = 0;
  size_t used_ = 0;
};

// A weight matrix packed for the GEMM, with its bias.
struct PackedWeight {
  int n = 0;              // output features
  int k = 0;              // input features
  float* data = nullptr;  // in `storage`, or in a WeightArena
  AlignedFloats storage;
  std::vector<float> bias;  // n floats, or empty
};
// `weight` is [n × k] (row-major, as Hugging Face Linear layers store it). The packed copy goes to
// `arena` when it has room, else to memory of its own.
PackedWeight PackWeight(const float* weight, int n, int k, std::vector<float> bias,
                        WeightArena* arena = nullptr);

enum class Epilogue { kNone, kBias, kBiasGelu };

// C = A · B (+ bias) (+ erf GELU). `a` is m rows of k with row stride lda; `c` is m rows of n with
// stride ldc. Runs on `pool` (may be null: the calling thread alone).
void Gemm(int m, int n, int k, const float* a, size_t lda, const float* packed_b, float* c,
          size_t ldc, Epilogue epilogue, const float* bias, ThreadPool* pool);

// The microkernels: 6×32 AVX-512 (two panels per call), 6×16 AVX2/FMA, 6×16 portable C++.
enum class GemmIsa { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };
// The one in use: the best the CPU supports, unless lowered by SetGemmIsa.
GemmIsa ActiveGemmIsa();
// Selects `isa`, or the best the CPU supports when that is lower; returns the one selected. For
// tests and benchmarks (ATRIUM_INFER_ISA): not to be called while a GEMM runs.
GemmIsa SetGemmIsa(GemmIsa isa);
const char* GemmIsaName(GemmIsa isa);

}  // namespace atrium::infer::cpu
