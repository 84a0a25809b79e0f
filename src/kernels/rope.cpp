// Rotary position embedding, rotate-half form: for i < half,
// (x_i, x_{i+half}) -> (x_i cos θ - x_{i+half} sin θ, x_{i+half} cos θ + x_i sin θ), θ = pos · theta^(-2i/head_dim).
#include <cmath>

#include "parallel.h"
#include "recur/kernels.h"

namespace recur::kernels {

RopeTable::RopeTable(int head_dim_, int max_pos_, float theta) : head_dim(head_dim_), max_pos(max_pos_) {
  int half = head_dim / 2;
  cos_sin.resize((size_t)max_pos * half * 2);
  for (int p = 0; p < max_pos; p++)
    for (int i = 0; i < half; i++) {
      // Same float32 arithmetic as the PyTorch reference: inv_freq in fp32, angle = pos * inv_freq in fp32.
      float inv_freq = 1.0f / std::pow(theta, (float)(2 * i) / (float)head_dim);
      float angle = (float)p * inv_freq;
      cos_sin[((size_t)p * half + i) * 2 + 0] = std::cos(angle);
      cos_sin[((size_t)p * half + i) * 2 + 1] = std::sin(angle);
    }
}

static void rotate_ref(float* x, const int32_t* pos, int N, int stride, int n_heads, int head_dim, float theta,
                       float sign) {
  int half = head_dim / 2;
  for (int n = 0; n < N; n++)
    for (int h = 0; h < n_heads; h++) {
      float* v = x + (size_t)n * stride + (size_t)h * head_dim;
      for (int i = 0; i < half; i++) {
        double angle = (double)pos[n] / std::pow((double)theta, (double)(2 * i) / head_dim);
        float c = (float)std::cos(angle), s = sign * (float)std::sin(angle);
        float a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
      }
    }
}

void rope_forward_ref(float* x, const int32_t* pos, int N, int stride, int n_heads, int head_dim, float theta) {
  rotate_ref(x, pos, N, stride, n_heads, head_dim, theta, 1.0f);
}
void rope_backward_ref(float* dx, const int32_t* pos, int N, int stride, int n_heads, int head_dim, float theta) {
  rotate_ref(dx, pos, N, stride, n_heads, head_dim, theta, -1.0f);
}

static void rotate(float* x, const int32_t* pos, int N, int stride, int n_heads, const RopeTable& table, float sign) {
  int half = table.head_dim / 2;
#pragma omp parallel for schedule(static) if ((size_t)N * n_heads * table.head_dim >= kParallelElements)
  for (int n = 0; n < N; n++) {
    const float* cs = table.cos_sin.data() + (size_t)pos[n] * half * 2;
    for (int h = 0; h < n_heads; h++) {
      float* v = x + (size_t)n * stride + (size_t)h * table.head_dim;
#pragma omp simd
      for (int i = 0; i < half; i++) {
        float c = cs[2 * i], s = sign * cs[2 * i + 1];
        float a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
      }
    }
  }
}

void rope_forward(float* x, const int32_t* pos, int N, int stride, int n_heads, const RopeTable& table) {
  rotate(x, pos, N, stride, n_heads, table, 1.0f);
}
void rope_backward(float* dx, const int32_t* pos, int N, int stride, int n_heads, const RopeTable& table) {
  rotate(dx, pos, N, stride, n_heads, table, -1.0f);
}

}  // namespace recur::kernels
