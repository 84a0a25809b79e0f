// kernels/dnnl_gemm.h: matrix products through oneDNN (dnnl_gemm.cpp), behind the GEMM seam of linear.cpp.
#pragma once
#include <cstdint>

namespace recur::kernels {

// C (M,N) = op(A) (M,K) · op(B) (K,N), or C += with accumulate; C row-major f32. op(A) is A stored row-major (M,K),
// or with trans_a A stored (K,M) row-major and transposed; op(B) likewise ((K,N), or (N,K) with trans_b). bf16
// inputs (the upper halves of f32 values) are multiplied exactly and summed in f32.
void dnnl_gemm_bf16(bool trans_a, bool trans_b, int M, int N, int K, const uint16_t* A, const uint16_t* B, float* C,
                    bool accumulate);
void dnnl_gemm_f32(bool trans_a, bool trans_b, int M, int N, int K, const float* A, const float* B, float* C,
                   bool accumulate);
// Whether oneDNN runs bf16 products natively on this CPU (AVX512-BF16: vdpbf16ps), rather than emulating them.
bool dnnl_has_native_bf16();

}  // namespace recur::kernels
