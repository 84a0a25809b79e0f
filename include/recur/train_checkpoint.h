// recur/train_checkpoint.h: a training checkpoint is a model checkpoint (checkpoint.h) plus the state a resumed run
// needs to continue exactly: optimizer.safetensors (AdamW moments by parameter name) and train_state.json (step and
// training settings).
#pragma once
#include <string>

#include "recur/checkpoint.h"
#include "recur/model.h"
#include "recur/train.h"

namespace recur {

// Writes <out_dir>/step_<opt.step>/ with the model, the optimizer moments and the training settings, and points
// <out_dir>/latest at it. Returns the checkpoint folder.
std::string checkpoint_save_training(const std::string& out_dir, const Model& model, const AdamW& opt,
                                     const TrainConfig& train_config);

// Weights, optimizer moments and step, and the training settings, for --resume. The checkpoint's config.json must
// match the model's config.
void checkpoint_load_training(const std::string& path, Model& model, AdamW& opt, TrainConfig& train_config);

}  // namespace recur
