// Data-parallel gradients (docs/distributed.md): every rank draws the whole global micro-batch from the seeded
// stream, runs its shards of contiguous rows, and the shards' gradients are combined weighted by their counted
// targets, so the result is one process's mean over the micro-batch. No MPI here: recur/distributed.h communicates.
#include <algorithm>
#include <chrono>
#include <cstring>

#include "recur/distributed.h"
#include "recur/error.h"
#include "recur/expert_choice.h"

namespace recur {

namespace {

int64_t counted_targets(const int32_t* targets, size_t n) {
  return std::count_if(targets, targets + n, [](int32_t t) { return t >= 0; });
}

Batch rows(const Batch& batch, int begin, int end) {
  Batch part;
  part.batch_size = end - begin;
  part.seq_len = batch.seq_len;
  size_t from = (size_t)begin * batch.seq_len, to = (size_t)end * batch.seq_len;
  part.tokens.assign(batch.tokens.begin() + (long)from, batch.tokens.begin() + (long)to);
  part.targets.assign(batch.targets.begin() + (long)from, batch.targets.begin() + (long)to);
  return part;
}

// FNV-1a over the bytes of the parameters and the MoR bias: equal on every rank unless they diverged.
uint64_t checksum(const Model& model) {
  uint64_t h = 1469598103934665603ull;
  auto add = [&h](const auto& values) {
    const unsigned char* bytes = (const unsigned char*)values.data();
    for (size_t i = 0; i < values.size() * sizeof(float); i++) h = (h ^ bytes[i]) * 1099511628211ull;
  };
  add(model.params);
  add(model.mor_bias);
  return h;
}

}  // namespace

DataParallel::DataParallel(const Model& model, const TrainConfig& c) {
  int ranks = dist_size();
  active_ = ranks > 1 || c.reduce_shards > 0;
  if (!active_) return;
  shards_ = c.reduce_shards > 0 ? c.reduce_shards : ranks;
  check(shards_ % ranks == 0, "train: --reduce_shards ", shards_, " is not a multiple of the ", ranks,
        " ranks; use a multiple (the shards are split evenly over the ranks)");
  check(shards_ <= c.batch_size, "train: ", shards_, " shards of a micro-batch of ", c.batch_size,
        " sequences leave a shard without rows; raise --batch_size or use fewer ranks or shards");
  local_shards_ = shards_ / ranks;
  first_shard_ = dist_rank() * local_shards_;
  depth_slots_ = model.config().mor() ? model.config().n_recursions : 0;
  if (model.config().mor() && model.config().mor_routing == MorRouting::token) route_slots_ = depth_slots_ + 1;
  partial_.assign((size_t)local_shards_ * model.n_params(), 0.0f);
  if (c.reduce_shards > 0 && ranks > 1) gathered_.resize((size_t)shards_ * model.n_params());
  dist_set_timeout(c.comm_timeout);
}

// The routing counts of the micro-batch's shards summed over the ranks (integers, so exact in any order).
static std::vector<double> all_reduced_counts(std::vector<double> counts, int64_t step) {
  dist_allreduce_sum(counts.data(), counts.size(), "the routing count all-reduce of step " + std::to_string(step + 1));
  return counts;
}

// The context of a shard's forward (recur/train_pass.h): its router means rescaled to the micro-batch's, and for
// token choice the micro-batch's routing counts: `counts` when already known, else all-reduced in the forward.
static MicroBatchShard shard_context(double weight, double row_share, bool token_choice,
                                     const std::vector<double>& counts, int64_t step) {
  MicroBatchShard shard;
  shard.mean_scale = row_share / weight;
  if (!token_choice) return shard;
  if (!counts.empty()) {
    shard.route_counts = [counts](const std::vector<double>&) { return counts; };
    return shard;
  }
  shard.route_counts = [step](const std::vector<double>& own) { return all_reduced_counts(own, step); };
  return shard;
}

std::vector<double> DataParallel::micro_batch_route_counts(TrainPass& pass, const std::vector<Batch>& shards,
                                                           int64_t step) const {
  std::vector<double> own(route_slots_, 0.0);
  MicroBatchShard record;
  record.route_counts = [&own](const std::vector<double>& counts) {
    for (size_t k = 0; k < counts.size(); k++) own[k] += counts[k];
    return counts;
  };
  pass.set_micro_batch_shard(record);
  for (const Batch& shard : shards)
    if (counted_targets(shard.targets.data(), shard.targets.size()) > 0)
      pass.forward(shard.tokens.data(), shard.targets.data(), shard.batch_size, shard.seq_len);
  pass.set_micro_batch_shard({});
  std::vector<double> all((size_t)route_slots_ * dist_size()), total(route_slots_, 0.0);
  dist_allgather(own.data(), own.size() * sizeof(double), all.data(),
                 "the routing count gather of step " + std::to_string(step + 1));
  for (size_t k = 0; k < all.size(); k++) total[k % route_slots_] += all[k];
  return total;
}

StepTotals DataParallel::gradients(TrainPass& pass, const TrainConfig& c, const BatchSource& batches, int64_t step) {
  // weighted loss, flops, tokens, then per step the load, then the causal rule's sums (MorStats)
  const size_t n = pass.grads.size(), record = 3 + (1 + kCausalSums) * (size_t)depth_slots_;
  scalars_.assign((size_t)local_shards_ * record, 0.0);
  std::fill(partial_.begin(), partial_.end(), 0.0f);
  for (int micro = 0; micro < c.grad_accum; micro++) {
    Batch batch = batches(step, micro);
    int64_t counted = counted_targets(batch.targets.data(), batch.targets.size());
    std::vector<Batch> shards;
    for (int s = first_shard_; s < first_shard_ + local_shards_; s++)
      shards.push_back(rows(batch, s * batch.batch_size / shards_, (s + 1) * batch.batch_size / shards_));
    // several shards on this rank: the micro-batch's routing is known only after a first forward of each
    std::vector<double> counts;
    if (route_slots_ > 0 && local_shards_ > 1) counts = micro_batch_route_counts(pass, shards, step);
    for (int i = 0; i < local_shards_; i++) {
      const Batch& shard = shards[i];
      int64_t own = counted_targets(shard.targets.data(), shard.targets.size());
      double* out = &scalars_[i * record];
      out[2] += (double)shard.batch_size * shard.seq_len;
      double weight = (double)own / (double)counted, share = (double)shard.batch_size / batch.batch_size;
      if (own == 0) {  // weight 0: nothing of this shard enters the mean, but the routing all-reduce needs it
        if (route_slots_ > 0 && local_shards_ == 1) all_reduced_counts(std::vector<double>(route_slots_, 0.0), step);
        continue;
      }
      pass.set_micro_batch_shard(shard_context(weight, share, route_slots_ > 0, counts, step));
      pass.zero_grad();
      double loss = pass.forward(shard.tokens.data(), shard.targets.data(), shard.batch_size, shard.seq_len);
      pass.backward();
      float* dst = partial_.data() + (size_t)i * n;
      for (size_t k = 0; k < n; k++) dst[k] += (float)weight * pass.grads[k];
      out[0] += weight * loss;
      out[1] += 3.0 * pass.last_forward_flops();
      if (micro + 1 < c.grad_accum) continue;
      const MorStats& mor = pass.mor_stats();  // the last micro-batch's, as train_step
      for (int r = 0; r < depth_slots_ && r < (int)mor.depth_load.size(); r++) out[3 + r] += share * mor.depth_load[r];
      for (size_t k = 0; k < kCausalSums * (size_t)depth_slots_ && k < mor.causal_sums.size(); k++)
        out[3 + depth_slots_ + k] += share * mor.causal_sums[k];
    }
  }
  pass.set_micro_batch_shard({});  // validation and the next one-process forwards see whole batches
  // Gradients: one all-reduce, or (reduce_shards) every shard gathered and summed in shard order on every rank.
  auto reduce_start = std::chrono::steady_clock::now();
  if (gathered_.empty() && local_shards_ == 1) {
    pass.grads.swap(partial_);
    dist_allreduce_sum(pass.grads.data(), n, "the gradient all-reduce of step " + std::to_string(step + 1));
  } else {
    const float* all = partial_.data();
    if (!gathered_.empty()) {
      dist_allgather(partial_.data(), partial_.size() * sizeof(float), gathered_.data(),
                     "the gradient gather of step " + std::to_string(step + 1));
      all = gathered_.data();
    }
    std::memcpy(pass.grads.data(), all, n * sizeof(float));
    for (int s = 1; s < shards_; s++)
      for (size_t k = 0; k < n; k++) pass.grads[k] += all[(size_t)s * n + k];
  }
  double reduce_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - reduce_start).count();
  std::vector<double> every((size_t)shards_ * record);
  dist_allgather(scalars_.data(), scalars_.size() * sizeof(double), every.data(), "the step's loss gather");
  StepTotals totals;
  totals.reduce_s = reduce_s;
  totals.depth_load.assign(depth_slots_, 0.0);
  totals.causal_sums.assign(kCausalSums * (size_t)depth_slots_, 0.0);
  for (int s = 0; s < shards_; s++) {
    const double* in = &every[(size_t)s * record];
    totals.loss += in[0], totals.flops += in[1], totals.tokens += (int64_t)in[2];
    for (int r = 0; r < depth_slots_; r++) totals.depth_load[r] += in[3 + r];
    for (size_t k = 0; k < totals.causal_sums.size(); k++) totals.causal_sums[k] += in[3 + depth_slots_ + k];
  }
  return totals;
}

void DataParallel::check_params(const Model& model, const TrainConfig& c, int64_t step) const {
  if (dist_size() == 1 || c.param_check_every <= 0 || step % c.param_check_every != 0) return;
  uint64_t own = checksum(model);
  std::vector<uint64_t> all(dist_size());
  dist_allgather(&own, sizeof own, all.data(), "the parameter check of step " + std::to_string(step));
  std::string differ;
  for (size_t r = 1; r < all.size(); r++)
    if (all[r] != all[0]) differ += " " + std::to_string(r);
  check(differ.empty(), "train: after step ", step, " the parameters of rank(s)", differ,
        " differ from rank 0's; the ranks diverged (other flags, build or data on some host?). The last checkpoint "
        "resumes the run");
}

}  // namespace recur
