// kernels/bf16_operand.h: the activation side of a bf16 product (recur/kernels.h, WeightView), shared by the
// emulated and native paths (linear.cpp) and the small-N kernel (linear_small.cpp).
#pragma once
#include <cstddef>
#include <cstdint>

namespace recur::kernels {

// inp (n) rounded to bf16 into this thread's scratch slot (0..2: one per operand live at once), or inp itself
// when the product is f32. Valid until the slot's next use on this thread.
const float* bf16_operand(const float* inp, size_t n, bool bf16, int slot);
// inp (n) as bf16 bits in this thread's scratch slot (0..2), for the native backend (dnnl_gemm.h).
const uint16_t* bf16_bits_operand(const float* inp, size_t n, int slot);

}  // namespace recur::kernels
