// recur/checkpoint.h: a model checkpoint is a folder holding config.json (model) and model.safetensors (weights by
// Llama names), plus any files its writer adds (training adds its optimizer state, see train_checkpoint.h). A
// checkpoint is written into a staging folder and renamed into place, then the `latest` pointer is replaced
// atomically, so a crash never leaves a half-written checkpoint where a reader would take it.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "recur/model.h"

namespace recur {

// Writes more files into a checkpoint's staging folder before it is published.
using CheckpointExtraFiles = std::function<void(const std::string& staging_dir)>;

// Writes <out_dir>/step_<step>/ (config.json, model.safetensors, then extra_files) and points <out_dir>/latest at
// it. Returns the checkpoint folder.
std::string checkpoint_save_model(const std::string& out_dir, const Model& model, int64_t step,
                                  const CheckpointExtraFiles& extra_files = {});

// A checkpoint folder, or an out_dir whose `latest` names one. Throws recur::Error if neither.
std::string checkpoint_resolve(const std::string& path);

// Model (config + weights) from a checkpoint folder or out_dir.
Model checkpoint_load_model(const std::string& path);
// Weights from a safetensors file into an existing model (names and shapes must match).
void load_weights(Model& model, const std::string& safetensors_path);
void save_weights(const Model& model, const std::string& safetensors_path);

}  // namespace recur
