// kernels/parallel.h: when an elementwise kernel opens an OpenMP region. At batch 1 a row is a few hundred floats,
// and waking the other threads costs more than the work; below this many elements the kernel runs on the caller.
#pragma once
#include <cstddef>

namespace recur::kernels {

constexpr size_t kParallelElements = size_t(32) << 10;

}  // namespace recur::kernels
