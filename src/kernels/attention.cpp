// Causal grouped-query attention over ragged (possibly compacted) sequences, flash style: the forward keeps
// only the log-sum-exp per query row; backward recomputes the probabilities tile by tile. The fast version
// runs small sgemm calls on query tiles (one thread per tile; BLAS stays single-threaded inside OpenMP).
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "fast_math.h"
#include "recur/kernels.h"

namespace recur::kernels {

namespace {

constexpr int kQueryTile = 64;
constexpr int kDirectRows = 4;                           // tiles of up to this many query rows skip sgemm
constexpr size_t kParallelScoreWork = size_t(64) << 10;  // query·key multiply-adds that pay for a region

// Number of keys of sequence s visible to a query at position qpos (keys are sorted by position).
int visible_keys(const AttentionShape& a, int s, int32_t qpos) {
  const int32_t* begin = a.k_pos + a.k_start[s];
  const int32_t* end = a.k_pos + a.k_start[s + 1];
  return (int)(std::upper_bound(begin, end, qpos) - begin);
}

float* scratch(std::vector<float>& buffer, size_t n) {
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Reference: one query at a time, full score row in double.

void attention_forward_ref(float* out, float* lse, const float* q, const float* k, const float* v,
                           const AttentionShape& a) {
  int hd = a.head_dim, group = a.n_heads / a.n_kv_heads;
  double scale = 1.0 / std::sqrt((double)hd);
  for (int s = 0; s < a.n_seq; s++)
    for (int i = a.q_start[s]; i < a.q_start[s + 1]; i++)
      for (int h = 0; h < a.n_heads; h++) {
        int g = h / group;
        const float* qi = q + (size_t)i * a.q_stride + h * hd;
        float* oi = out + (size_t)i * a.out_stride + h * hd;
        int nk = visible_keys(a, s, a.q_pos[i]);
        std::vector<double> score(nk);
        double mx = -std::numeric_limits<double>::infinity();
        for (int j = 0; j < nk; j++) {
          const float* kj = k + (size_t)(a.k_start[s] + j) * a.kv_stride + g * hd;
          double dot = 0;
          for (int d = 0; d < hd; d++) dot += (double)qi[d] * kj[d];
          score[j] = dot * scale;
          mx = std::max(mx, score[j]);
        }
        double sum = 0;
        for (int j = 0; j < nk; j++) sum += std::exp(score[j] - mx);
        for (int d = 0; d < hd; d++) {
          double acc = 0;
          for (int j = 0; j < nk; j++)
            acc += std::exp(score[j] - mx) / sum * v[(size_t)(a.k_start[s] + j) * a.kv_stride + g * hd + d];
          oi[d] = (float)acc;
        }
        lse[(size_t)i * a.n_heads + h] = nk > 0 ? (float)(mx + std::log(sum)) : 0.0f;
      }
}

void attention_backward_ref(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                            const float* q, const float* k, const float* v, const AttentionShape& a) {
  int hd = a.head_dim, group = a.n_heads / a.n_kv_heads;
  double scale = 1.0 / std::sqrt((double)hd);
  for (int s = 0; s < a.n_seq; s++)
    for (int i = a.q_start[s]; i < a.q_start[s + 1]; i++)
      for (int h = 0; h < a.n_heads; h++) {
        int g = h / group;
        const float* qi = q + (size_t)i * a.q_stride + h * hd;
        const float* doi = dout + (size_t)i * a.out_stride + h * hd;
        const float* oi = out + (size_t)i * a.out_stride + h * hd;
        double D = 0;
        for (int d = 0; d < hd; d++) D += (double)doi[d] * oi[d];
        int nk = visible_keys(a, s, a.q_pos[i]);
        for (int j = 0; j < nk; j++) {
          size_t row = (size_t)(a.k_start[s] + j) * a.kv_stride + g * hd;
          double dot = 0, dp = 0;
          for (int d = 0; d < hd; d++) {
            dot += (double)qi[d] * k[row + d];
            dp += (double)doi[d] * v[row + d];
          }
          double p = std::exp(dot * scale - lse[(size_t)i * a.n_heads + h]);
          double ds = p * (dp - D) * scale;
          for (int d = 0; d < hd; d++) {
            dv[row + d] += (float)(p * doi[d]);
            dq[(size_t)i * a.q_stride + h * hd + d] += (float)(ds * k[row + d]);
            dk[row + d] += (float)(ds * qi[d]);
          }
        }
      }
}

// ---------------------------------------------------------------------------------------------------------
// Fast: tiles of kQueryTile query rows; scores for a tile live in a thread-local (tile × visible keys) buffer.

// A few query rows (decoding): scores, softmax and the weighted sum of values by direct dot products, where two
// sgemm calls per row would cost more than their work. q, out at the tile's first row; k, v at the sequence's
// first key of kv head g.
static void attend_rows_direct(float* out, float* lse, const float* q, const float* k, const float* v,
                               const AttentionShape& a, int s, int i0, int rows, float scale, std::vector<float>& buf) {
  int hd = a.head_dim;
  for (int r = 0; r < rows; r++) {
    const float* qi = q + (size_t)r * a.q_stride;
    float* oi = out + (size_t)r * a.out_stride;
    int li = visible_keys(a, s, a.q_pos[i0 + r]);
    float* S = scratch(buf, (size_t)std::max(li, 1));
    float mx = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < li; j++) {
      const float* kj = k + (size_t)j * a.kv_stride;
      float dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int d = 0; d < hd; d++) dot += qi[d] * kj[d];
      S[j] = dot * scale;
      mx = std::max(mx, S[j]);
    }
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < li; j++) {
      S[j] = fast_expf(S[j] - mx);
      sum += S[j];
    }
    std::fill(oi, oi + hd, 0.0f);
    for (int j = 0; j < li; j++) {
      const float* vj = v + (size_t)j * a.kv_stride;
      float p = S[j] / sum;
#pragma omp simd
      for (int d = 0; d < hd; d++) oi[d] += p * vj[d];
    }
    lse[(size_t)r * a.n_heads] = li > 0 ? mx + std::log(sum) : 0.0f;
  }
}

// One query tile of sequence s, head h: rows [i0, i0 + rows).
static void attend_tile(float* out, float* lse, const float* q, const float* k, const float* v, const AttentionShape& a,
                        int s, int h, int i0, int rows, std::vector<float>& buf) {
  int hd = a.head_dim, g = h / (a.n_heads / a.n_kv_heads);
  float scale = 1.0f / std::sqrt((float)hd);
  int nk = visible_keys(a, s, a.q_pos[i0 + rows - 1]);
  const float* kb = k + (size_t)a.k_start[s] * a.kv_stride + g * hd;
  const float* vb = v + (size_t)a.k_start[s] * a.kv_stride + g * hd;
  const float* qb = q + (size_t)i0 * a.q_stride + h * hd;
  float* ob = out + (size_t)i0 * a.out_stride + h * hd;
  float* lb = lse + (size_t)i0 * a.n_heads + h;
  if (rows <= kDirectRows) return attend_rows_direct(ob, lb, qb, kb, vb, a, s, i0, rows, scale, buf);
  float* S = scratch(buf, (size_t)rows * std::max(nk, 1));
  if (nk > 0)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, hd, scale, qb, a.q_stride, kb, a.kv_stride, 0.0f, S,
                nk);
  for (int r = 0; r < rows; r++) {
    float* row = S + (size_t)r * nk;
    int li = visible_keys(a, s, a.q_pos[i0 + r]);
    float mx = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < li; j++) mx = std::max(mx, row[j]);
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < li; j++) {
      row[j] = fast_expf(row[j] - mx);
      sum += row[j];
    }
    float inv = li > 0 ? 1.0f / sum : 0.0f;
    for (int j = 0; j < li; j++) row[j] *= inv;
    for (int j = li; j < nk; j++) row[j] = 0.0f;
    lb[(size_t)r * a.n_heads] = li > 0 ? mx + std::log(sum) : 0.0f;
  }
  if (nk > 0)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, nk, 1.0f, S, nk, vb, a.kv_stride, 0.0f, ob,
                a.out_stride);
  else
    for (int r = 0; r < rows; r++) std::fill(ob + (size_t)r * a.out_stride, ob + (size_t)r * a.out_stride + hd, 0.f);
}

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       const AttentionShape& a) {
  AttentionCall call{out, lse, q, k, v, a};
  attention_forward_calls(&call, 1);
}

void attention_forward_calls(const AttentionCall* calls, int n_calls) {
  // Enumerate (call, sequence, tile, head) tasks so every thread gets equal-sized work, across calls too (decoding
  // several sequences is one call per sequence cache); kept across calls: no allocation per decode step. The region
  // opens only when the scores are many enough to pay for waking the threads.
  struct Task {
    int call, seq, row, head;
  };
  thread_local std::vector<Task> tasks;
  tasks.clear();
  size_t work = 0;
  for (int c = 0; c < n_calls; c++) {
    const AttentionShape& a = calls[c].shape;
    for (int s = 0; s < a.n_seq; s++) {
      for (int i = a.q_start[s]; i < a.q_start[s + 1]; i += kQueryTile)
        for (int h = 0; h < a.n_heads; h++) tasks.push_back({c, s, i, h});
      work += (size_t)(a.q_start[s + 1] - a.q_start[s]) * (a.k_start[s + 1] - a.k_start[s]) * a.n_heads * a.head_dim;
    }
  }
  int n_tasks = (int)tasks.size();
  const Task* task_list = tasks.data();  // the caller's: thread_local differs per thread
#pragma omp parallel if (work >= kParallelScoreWork)
  {
    thread_local std::vector<float> score_buffer;
#pragma omp for schedule(dynamic, 1)
    for (int i = 0; i < n_tasks; i++) {
      const Task& t = task_list[i];
      const AttentionCall& c = calls[t.call];
      attend_tile(c.out, c.lse, c.q, c.k, c.v, c.shape, t.seq, t.head, t.row,
                  std::min(kQueryTile, c.shape.q_start[t.seq + 1] - t.row), score_buffer);
    }
  }
}

// One task per (sequence, kv head): it owns that head's dk/dv rows, so no two threads write the same memory.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                        const float* q, const float* k, const float* v, const AttentionShape& a) {
  int hd = a.head_dim, group = a.n_heads / a.n_kv_heads;
  float scale = 1.0f / std::sqrt((float)hd);
  int n_tasks = a.n_seq * a.n_kv_heads;
#pragma omp parallel
  {
    thread_local std::vector<float> p_buffer, dp_buffer;
#pragma omp for schedule(dynamic, 1)
    for (int task = 0; task < n_tasks; task++) {
      int s = task / a.n_kv_heads, g = task % a.n_kv_heads;
      size_t kv_off = (size_t)a.k_start[s] * a.kv_stride + g * hd;
      for (int h = g * group; h < (g + 1) * group; h++)
        for (int i0 = a.q_start[s]; i0 < a.q_start[s + 1]; i0 += kQueryTile) {
          int i1 = std::min(i0 + kQueryTile, (int)a.q_start[s + 1]), rows = i1 - i0;
          int nk = visible_keys(a, s, a.q_pos[i1 - 1]);
          if (nk == 0) continue;
          size_t q_off = (size_t)i0 * a.q_stride + h * hd, o_off = (size_t)i0 * a.out_stride + h * hd;
          float* P = scratch(p_buffer, (size_t)rows * nk);
          float* dP = scratch(dp_buffer, (size_t)rows * nk);
          // P = exp(scale·Q Kᵀ - lse), zero beyond each row's causal limit
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, hd, scale, q + q_off, a.q_stride, k + kv_off,
                      a.kv_stride, 0.0f, P, nk);
          for (int r = 0; r < rows; r++) {
            int li = visible_keys(a, s, a.q_pos[i0 + r]);
            float l = lse[(size_t)(i0 + r) * a.n_heads + h];
            float* row = P + (size_t)r * nk;
#pragma omp simd
            for (int j = 0; j < li; j++) row[j] = fast_expf(row[j] - l);
            for (int j = li; j < nk; j++) row[j] = 0.0f;
          }
          // dV += Pᵀ dO ; dP = dO Vᵀ
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hd, rows, 1.0f, P, nk, dout + o_off, a.out_stride,
                      1.0f, dv + kv_off, a.kv_stride);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, hd, 1.0f, dout + o_off, a.out_stride,
                      v + kv_off, a.kv_stride, 0.0f, dP, nk);
          // dS = P ∘ (dP - rowsum(dO ∘ O)) · scale
          for (int r = 0; r < rows; r++) {
            const float* dor = dout + o_off + (size_t)r * a.out_stride;
            const float* orow = out + o_off + (size_t)r * a.out_stride;
            float D = 0;
            for (int d = 0; d < hd; d++) D += dor[d] * orow[d];
            float* p = P + (size_t)r * nk;
            float* ds = dP + (size_t)r * nk;
            for (int j = 0; j < nk; j++) ds[j] = p[j] * (ds[j] - D) * scale;
          }
          // dQ += dS K ; dK += dSᵀ Q
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, nk, 1.0f, dP, nk, k + kv_off, a.kv_stride,
                      1.0f, dq + q_off, a.q_stride);
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hd, rows, 1.0f, dP, nk, q + q_off, a.q_stride, 1.0f,
                      dk + kv_off, a.kv_stride);
        }
    }
  }
}

}  // namespace recur::kernels
