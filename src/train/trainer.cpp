// The training loop: micro-batches, clipping, AdamW, a progress line, JSONL metrics, validation and
// checkpoints. A resumed run replays exactly: batches depend only on (seed, step), the optimizer state and
// weights are restored bit for bit.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "recur/distributed.h"
#include "recur/error.h"
#include "recur/expert_choice.h"
#include "recur/rng.h"
#include "recur/run_lock.h"
#include "recur/token_choice.h"
#include "recur/train.h"
#include "recur/train_checkpoint.h"

namespace recur {

using Clock = std::chrono::steady_clock;

BatchSource text_batches(const std::vector<uint8_t>& text, const TrainConfig& c) {
  return
      [&text, c](int64_t step, int micro) { return sample_batch(text, c.batch_size, c.seq_len, c.seed, step, micro); };
}

// MorStats as numbers that add up over batches and ranks: per step its active fraction and load, then aux, z,
// balance, causal agreement and dead tokens.
static size_t mor_slots(int steps) { return 2 * (size_t)steps + 5; }

static void add_mor_stats(const MorStats& s, double* sum) {
  size_t steps = s.active_fraction.size();
  for (size_t r = 0; r < steps; r++) sum[2 * r] += s.active_fraction[r], sum[2 * r + 1] += s.depth_load[r];
  double* tail = sum + 2 * steps;
  tail[0] += s.aux_loss, tail[1] += s.z_loss, tail[2] += s.balance_loss, tail[3] += s.causal_agreement,
      tail[4] += s.dead_token_ratio;
}

// Routing statistics from their means over a validation pass's forwards (add_mor_stats' layout).
static EvalMetrics mor_eval_metrics(const double* mean, int steps) {
  EvalMetrics m;
  for (int r = 0; r < steps; r++) {
    m.push_back({"mor_active_" + std::to_string(r), mean[2 * r]});
    m.push_back({"mor_load_" + std::to_string(r), mean[2 * r + 1]});
  }
  const double* tail = mean + 2 * steps;
  m.insert(m.end(), {{"mor_aux", tail[0]},
                     {"mor_z", tail[1]},
                     {"mor_balance", tail[2]},
                     {"mor_causal_agreement", tail[3]},
                     {"mor_dead_tokens", tail[4]}});
  return m;
}

// The causal rule's routing beside top-k's (expert choice): its active fraction per step and its dead tokens.
static EvalMetrics causal_routing_metrics(const double* mean, int steps) {
  EvalMetrics m;
  for (const auto& [name, value] : mor_eval_metrics(mean, steps))
    if (name.rfind("mor_active_", 0) == 0 || name == "mor_dead_tokens") m.push_back({name + "_causal", value});
  return m;
}

// Of several ranks (docs/distributed.md) each validates batches rank, rank + ranks, ... into that batch's row of a
// table that is all-reduced (each row has one rank's values and the others' zeros, so the sum is exact); every rank
// then adds the rows in batch order, as one process does, so the means do not depend on the number of ranks.
Evaluator batch_validation(std::function<Batch(int i)> batch_at, const TrainConfig& c) {
  return [batch_at, c](TrainPass& pass) {
    const ModelConfig& config = pass.model().config();
    // expert choice also runs the causal rule that decoding uses, instead of the top-k over each whole window
    bool causal_too = config.mor_routing == MorRouting::expert;
    int steps = config.mor() ? config.n_recursions : 0;
    size_t routing = config.mor() ? mor_slots(steps) : 0;
    size_t width = 3 + 2 * routing;  // total loss, cross entropy, causal; routing; causal routing
    std::vector<double> rows((size_t)c.eval_batches * width, 0.0);  // [eval_batches, width]
    for (int i = dist_rank(); i < c.eval_batches; i += dist_size()) {
      Batch batch = batch_at(i);
      double* row = &rows[(size_t)i * width];
      row[0] += pass.forward(batch.tokens.data(), batch.targets.data(), batch.batch_size, batch.seq_len);
      row[1] += pass.last_cross_entropy();
      if (config.mor()) add_mor_stats(pass.mor_stats(), &row[3]);
      if (!causal_too) continue;
      pass.set_mor_causal_routing(true);
      pass.forward(batch.tokens.data(), batch.targets.data(), batch.batch_size, batch.seq_len);
      row[2] += pass.last_cross_entropy();
      add_mor_stats(pass.mor_stats(), &row[3 + routing]);
      pass.set_mor_causal_routing(false);
    }
    dist_allreduce_sum(rows.data(), rows.size(), "the validation sums");
    std::vector<double> sums(width, 0.0);
    for (size_t k = 0; k < rows.size(); k++) sums[k % width] += rows[k];
    for (double& sum : sums) sum /= c.eval_batches;
    EvalMetrics m{{"val_loss", sums[1]}};
    if (sums[0] != sums[1]) m.push_back({"val_total_loss", sums[0]});
    if (config.mor()) {
      EvalMetrics mor = mor_eval_metrics(&sums[3], steps);
      m.insert(m.end(), mor.begin(), mor.end());
    }
    if (causal_too) {
      m.push_back({"val_loss_causal", sums[2]});
      EvalMetrics causal = causal_routing_metrics(&sums[3 + routing], steps);
      m.insert(m.end(), causal.begin(), causal.end());
      for (int r = 0; r < steps; r++) m.push_back({"mor_causal_bias_" + std::to_string(r), pass.model().mor_bias[r]});
    }
    return m;
  };
}

Evaluator text_validation(const std::vector<uint8_t>& val_text, const TrainConfig& c) {
  int seq_len = std::min<int>(c.seq_len, (int)val_text.size() - 2);
  // A fixed stream (not the training seed's) so that every run is validated on the same windows.
  return batch_validation(
      [&val_text, c, seq_len](int i) { return sample_batch(val_text, c.batch_size, seq_len, 0xE7A1, i, 0); }, c);
}

// One process: every micro-batch's gradient added into pass.grads.
static StepTotals local_gradients(TrainPass& pass, const TrainConfig& c, const BatchSource& batches, int64_t step) {
  pass.zero_grad();
  StepTotals totals;
  for (int micro = 0; micro < c.grad_accum; micro++) {
    Batch batch = batches(step, micro);
    totals.loss += pass.forward(batch.tokens.data(), batch.targets.data(), batch.batch_size, batch.seq_len);
    pass.backward();
    totals.tokens += (int64_t)batch.batch_size * batch.seq_len;
    totals.flops += 3.0 * pass.last_forward_flops();
  }
  totals.depth_load = pass.mor_stats().depth_load;
  totals.causal_sums = pass.mor_stats().causal_sums;
  return totals;
}

StepMetrics train_step(Model& model, TrainPass& pass, AdamW& opt, const TrainConfig& c, const BatchSource& batches,
                       DataParallel* parallel) {
  check(&pass.model() == &model, "train_step: the pass runs another model");
  auto t0 = Clock::now();
  int trained_loops = model.config().loop_count;
  if (c.loop_count_max > 0) {
    Rng rng(mix_seed(c.seed ^ 0x100b, (uint64_t)opt.step));
    model.set_loop_count(c.loop_count_min + (int)rng.uniform(c.loop_count_max - c.loop_count_min + 1));
  }
  bool mor = model.config().mor();
  if (mor) {
    auto ramp = [&](int64_t warmup) { return warmup > 0 ? std::min(1.0, (double)(opt.step + 1) / warmup) : 1.0; };
    pass.set_mor_warmup(ramp(c.mor_capacity_warmup_steps), ramp(c.mor_balance_warmup_steps));
  }
  StepTotals totals = parallel && parallel->active() ? parallel->gradients(pass, c, batches, opt.step)
                                                     : local_gradients(pass, c, batches, opt.step);
  if (c.loop_count_max > 0) model.set_loop_count(trained_loops);
  if (c.grad_accum > 1) kernels::scale_inplace(pass.grads.data(), pass.grads.size(), 1.0f / c.grad_accum);
  StepMetrics m;
  m.grad_norm = clip_grad_norm(pass.grads, c.grad_clip);
  m.lr = lr_at(c, opt.step);
  m.skipped = !guarded_update(model, pass.grads, opt, c, m.lr, m.grad_norm);
  if (!m.skipped && model.precision() == Precision::bf16) model.set_precision(Precision::bf16);  // follow the update
  if (mor && !m.skipped) {
    if (c.mor_bias_rate > 0) token_update_bias(model, totals.depth_load, c.mor_bias_rate);
    if (c.mor_causal_rate > 0) expert_update_bias(model, totals.causal_sums, c.mor_causal_rate);
    pass.set_mor_warmup(1.0, 1.0);  // evaluation and inference use the target capacities
  }
  m.step = opt.step;
  m.loss = (float)(totals.loss / c.grad_accum);
  m.elapsed_s = std::chrono::duration<double>(Clock::now() - t0).count();
  m.tokens_per_s = (double)totals.tokens / m.elapsed_s;
  m.flops = totals.flops;
  m.reduce_s = totals.reduce_s;
  return m;
}

static std::string format_duration(double seconds) {
  char buf[32];
  int s = (int)seconds;
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%dh%02dm", s / 3600, s / 60 % 60);
  else
    std::snprintf(buf, sizeof buf, "%dm%02ds", s / 60, s % 60);
  return buf;
}

// Weights, moments and step from opts.resume_from; the settings that shape the trajectory, the tokenizer and the
// data must be the checkpoint's (steps may be extended); the data position continues from the checkpoint's.
static void resume_run(Model& model, AdamW& opt, const TrainConfig& c, const TrainOptions& opts, bool quiet) {
  TrainConfig saved;
  TrainExtras extras;
  checkpoint_load_training(opts.resume_from, model, opt, saved, &extras);
  check(saved.batch_size == c.batch_size && saved.seq_len == c.seq_len && saved.seed == c.seed &&
            saved.grad_accum == c.grad_accum && saved.precision == c.precision,
        "resume: batch_size/seq_len/seed/grad_accum/precision differ from the checkpoint's (", saved.batch_size, "/",
        saved.seq_len, "/", saved.seed, "/", saved.grad_accum, "/", precision_name(saved.precision),
        "); pass the same values to continue the run");
  check(extras.tokenizer_model == opts.tokenizer_model,
        "resume: the checkpoint was trained with another tokenizer than this run's data (",
        extras.tokenizer_model.empty() ? "byte-level" : "its tokenizer.model", "); resume on the same data");
  if (opts.data_position) {
    check(!extras.data_position.empty(),
          "resume: the checkpoint has no data position (it was trained on a text "
          "corpus, not token shards); resume with its --data");
    opts.data_position->restore(extras.data_position, opt.step);
  } else {
    check(extras.data_position.empty(),
          "resume: the checkpoint was trained on token shards; resume with their "
          "--data folder");
  }
  if (!quiet)
    std::printf("resumed from %s at step %lld\n", checkpoint_resolve(opts.resume_from).c_str(), (long long)opt.step);
}

StepMetrics train_run(Model& model, const TrainConfig& config, const BatchSource& batches, const Evaluator& evaluate,
                      const TrainOptions& opts) {
  config.validate();
  config.check_acts_on(model.config());
  std::optional<RunLock> lock;  // one writer per run folder (rank 0 of several), from before a resume reads it
  if (dist_rank() == 0) lock.emplace(opts.out_dir);
  if (!opts.resume_from.empty()) check_resume_fits(opts.resume_from, model);
  check_training_memory(model, config);
  check(config.seq_len <= model.config().max_seq_len,
        "train: seq_len " + std::to_string(config.seq_len) + " exceeds the model's max_seq_len " +
            std::to_string(model.config().max_seq_len) + "; lower --seq_len or raise max_seq_len in the config");
  TrainPass pass(model);
  AdamW opt;
  opt.init(model.n_params());
  TrainConfig c = config;
  bool writer = dist_rank() == 0;  // of several ranks only rank 0 prints and writes (docs/distributed.md)
  bool quiet = opts.quiet || !writer;
  if (!opts.resume_from.empty()) resume_run(model, opt, c, opts, quiet);
  model.set_precision(c.precision);
  std::ofstream metrics;
  if (writer) {
    std::filesystem::create_directories(opts.out_dir);
    open_metrics_for_append(opts.out_dir, metrics);
  }
  DataParallel parallel(model, c);
  StepMetrics last;
  auto run_start = Clock::now();
  int64_t first_step = opt.step;
  double smoothed_tps = 0;
  int64_t last_step = opts.stop_at > 0 ? std::min(opts.stop_at, c.steps) : c.steps, skipped = 0;
  while (opt.step < last_step) {
    last = train_step(model, pass, opt, c, batches, &parallel);
    parallel.check_params(model, c, last.step);
    skipped += last.skipped;
    check(last.skipped || std::isfinite(last.loss), "train: loss became ", last.loss, " at step ", last.step,
          "; lower --lr or check the data");
    smoothed_tps = smoothed_tps == 0 ? last.tokens_per_s : 0.9 * smoothed_tps + 0.1 * last.tokens_per_s;
    nlohmann::json row = {{"step", last.step},
                          {"loss", last.loss},
                          {"lr", last.lr},
                          {"grad_norm", last.grad_norm},
                          {"tokens_per_s", last.tokens_per_s},
                          {"seconds", last.elapsed_s},
                          {"flops", last.flops}};
    if (dist_size() > 1) row["reduce_seconds"] = last.reduce_s;
    bool eval_now = (c.eval_every > 0 && last.step % c.eval_every == 0) || last.step == c.steps;
    EvalMetrics eval;
    if (eval_now && evaluate) {
      eval = evaluate(pass);
      for (const auto& [name, value] : eval) row[name] = value;
    }
    if (writer) metrics << row.dump() << "\n" << std::flush;
    bool log_now = (c.log_every > 0 && last.step % c.log_every == 0) || last.step == c.steps || eval_now;
    if (log_now && !quiet) {
      double elapsed = std::chrono::duration<double>(Clock::now() - run_start).count();
      double eta = elapsed / (double)(last.step - first_step) * (double)(c.steps - last.step);
      std::printf("step %6lld/%lld | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s | ETA %s", (long long)last.step,
                  (long long)c.steps, last.loss, last.lr, last.grad_norm, smoothed_tps, format_duration(eta).c_str());
      for (const auto& [name, value] : eval) std::printf(" | %s %.4g", name.c_str(), value);
      std::printf("\n");
      std::fflush(stdout);
    }
    if (writer && ((c.save_every > 0 && last.step % c.save_every == 0) || last.step == last_step)) {
      TrainExtras extras{opts.tokenizer_model, opts.data_position ? opts.data_position->save(last.step) : ""};
      std::string dir = checkpoint_save_training(opts.out_dir, model, opt, c, extras);
      if (!quiet && last.step == last_step) std::printf("saved checkpoint %s\n", dir.c_str());
    }
  }
  if (skipped > 0) std::fprintf(stderr, "train: skipped %lld non-finite steps\n", (long long)skipped);
  return last;
}

}  // namespace recur
