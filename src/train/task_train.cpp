// Task batches (answer-only loss) and exact-match evaluation for the synthetic reasoning tasks.
#include "recur/task_train.h"

#include <algorithm>

#include "recur/error.h"
#include "recur/rng.h"

namespace recur {

// Packs examples into rows of one length: tokens padded with 0, targets -1 except where supervised.
static Batch pack(const std::vector<tasks::Example>& examples) {
  Batch batch;
  batch.batch_size = (int)examples.size();
  batch.seq_len = 0;
  for (const auto& e : examples) batch.seq_len = std::max(batch.seq_len, (int)e.tokens.size() - 1);
  batch.tokens.assign((size_t)batch.batch_size * batch.seq_len, 0);
  batch.targets.assign(batch.tokens.size(), -1);
  for (int b = 0; b < batch.batch_size; b++) {
    const tasks::Example& e = examples[b];
    int32_t* tok = batch.tokens.data() + (size_t)b * batch.seq_len;
    int32_t* tgt = batch.targets.data() + (size_t)b * batch.seq_len;
    int n = (int)e.tokens.size() - 1;  // the last token is only ever a target
    std::copy(e.tokens.begin(), e.tokens.begin() + n, tok);
    if (!e.dense_targets.empty())
      std::copy(e.dense_targets.begin(), e.dense_targets.begin() + n, tgt);
    else
      for (int t = e.answer_begin - 1; t < n; t++) tgt[t] = e.tokens[t + 1];
  }
  return batch;
}

Batch task_batch(const tasks::Task& task, int batch_size, uint64_t seed, int64_t step, int micro_step) {
  std::vector<int> difficulties = task.train_difficulties_at(step);
  Rng rng(mix_seed(mix_seed(seed, (uint64_t)step), (uint64_t)micro_step + 0x7a5c));
  std::vector<tasks::Example> examples;
  for (int b = 0; b < batch_size; b++) {
    int difficulty = difficulties[rng.uniform(difficulties.size())];
    examples.push_back(task.generate(tasks::Split::train, rng.next_u64(), difficulty));
  }
  return pack(examples);
}

BatchSource task_batches(const tasks::Task& task, const TrainConfig& c) {
  return [&task, c](int64_t step, int micro) { return task_batch(task, c.batch_size, c.seed, step, micro); };
}

std::vector<DifficultyAccuracy> evaluate_task(TrainPass& pass, const tasks::Task& task, tasks::Split split,
                                              int examples_per_difficulty, int batch_size) {
  check(examples_per_difficulty > 0 && batch_size > 0, "evaluate: examples and batch size must be positive");
  int V = pass.model().config().vocab_size;
  std::vector<DifficultyAccuracy> result;
  for (int difficulty : task.difficulties(split)) {
    DifficultyAccuracy acc;
    acc.difficulty = difficulty;
    for (int start = 0; start < examples_per_difficulty; start += batch_size) {
      std::vector<tasks::Example> examples;
      for (int i = start; i < std::min(examples_per_difficulty, start + batch_size); i++) {
        examples.push_back(task.generate(split, (uint64_t)i, difficulty));
        examples.back().dense_targets.clear();  // accuracy is on the answer, whatever the training targets
      }
      Batch batch = pack(examples);
      pass.forward(batch.tokens.data(), nullptr, batch.batch_size, batch.seq_len);
      for (int b = 0; b < batch.batch_size; b++) {
        bool correct = true;
        for (int t = 0; t < batch.seq_len && correct; t++) {
          int32_t want = batch.targets[(size_t)b * batch.seq_len + t];
          if (want < 0) continue;
          const float* logits = pass.logits() + ((size_t)b * batch.seq_len + t) * V;
          correct = (int32_t)(std::max_element(logits, logits + V) - logits) == want;
        }
        acc.correct += correct;
        acc.examples++;
      }
    }
    result.push_back(acc);
  }
  return result;
}

Evaluator task_validation(const tasks::Task& task, int examples_per_difficulty, int batch_size) {
  return [&task, examples_per_difficulty, batch_size](TrainPass& pass) {
    EvalMetrics metrics;
    double mean = 0;
    auto accs = evaluate_task(pass, task, tasks::Split::test, examples_per_difficulty, batch_size);
    for (const auto& a : accs) {
      metrics.push_back({"acc_" + std::to_string(a.difficulty), a.accuracy()});
      mean += a.accuracy() / accs.size();
    }
    metrics.push_back({"acc_mean", mean});
    return metrics;
  };
}

}  // namespace recur
