// recur/train_checkpoint.h: a training checkpoint is a model checkpoint (checkpoint.h) plus the state a resumed run
// needs to continue exactly: optimizer.safetensors (AdamW moments by parameter name) and train_state.json (step and
// training settings).
#pragma once
#include <string>

#include "recur/checkpoint.h"
#include "recur/model.h"
#include "recur/train.h"

namespace recur {

// What a training checkpoint may hold beyond model, moments and settings: the serialized SentencePiece model
// (tokenizer.model; empty: byte-level) and the data position (train_state.json "data", a JSON object; empty: none).
struct TrainExtras {
  std::string tokenizer_model, data_position;
};

// Writes <out_dir>/step_<opt.step>/ with the model, the optimizer moments, the training settings and the extras,
// and points <out_dir>/latest at it. Returns the checkpoint folder.
std::string checkpoint_save_training(const std::string& out_dir, const Model& model, const AdamW& opt,
                                     const TrainConfig& train_config, const TrainExtras& extras = {});

// The checks of a resume that need no tensor read: checkpoint `path` has config.json equal to model's config and
// optimizer state, and its safetensors files hold as many tensor bytes as that config's parameters (an Error
// naming the file and the fix otherwise). train_run calls it before allocating the optimizer and activations.
void check_resume_fits(const std::string& path, const Model& model);

// Weights, optimizer moments and step, the training settings and (when asked) the extras, for --resume. The
// checkpoint's config.json must match the model's config.
void checkpoint_load_training(const std::string& path, Model& model, AdamW& opt, TrainConfig& train_config,
                              TrainExtras* extras = nullptr);

}  // namespace recur
