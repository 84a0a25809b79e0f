// kernels/bf16_operand.h: the activation side of a bf16 product (recur/kernels.h, WeightView), shared by the
// sgemm path (linear.cpp) and the small-N kernel (linear_small.cpp).
#pragma once
#include <cstddef>

namespace recur::kernels {

// inp (n) rounded to bf16 into this thread's scratch slot (0..2: one per operand live at once), or inp itself
// when the product is f32. Valid until the slot's next use on this thread.
const float* bf16_operand(const float* inp, size_t n, bool bf16, int slot);

}  // namespace recur::kernels
