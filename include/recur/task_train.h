// recur/task_train.h: training and evaluating models on the synthetic reasoning tasks (docs/tasks.md): batches of
// examples with the loss on the answer only (or dense per-position targets), and exact-match accuracy per
// difficulty on the disjoint test split.
#pragma once
#include <cstdint>
#include <vector>

#include "recur/model.h"
#include "recur/tasks.h"
#include "recur/train.h"

namespace recur {

// Training examples for (seed, step, micro_step): difficulties drawn uniformly from the task's training list.
// Rows are padded to the longest example of the batch; padding and prompt positions carry target -1.
Batch task_batch(const tasks::Task& task, int batch_size, uint64_t seed, int64_t step, int micro_step);
BatchSource task_batches(const tasks::Task& task, const TrainConfig& config);

struct DifficultyAccuracy {
  int difficulty = 0;
  int examples = 0, correct = 0;
  double accuracy() const { return examples ? (double)correct / examples : 0.0; }
};

// Exact match: an example is correct when the argmax at every answer position equals the answer token given
// the true prefix (which is exactly when greedy decoding reproduces the whole answer). Examples are test-split
// indices 0..n-1 of each difficulty of `split`'s list.
std::vector<DifficultyAccuracy> evaluate_task(TrainPass& pass, const tasks::Task& task, tasks::Split split,
                                              int examples_per_difficulty, int batch_size);

// Evaluator for train_run: test accuracy per difficulty (acc_<d>) and their mean (acc_mean).
Evaluator task_validation(const tasks::Task& task, int examples_per_difficulty, int batch_size);

}  // namespace recur
