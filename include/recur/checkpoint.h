// recur/checkpoint.h: a model checkpoint is a folder holding config.json (model) and model.safetensors (weights by
// Llama names), plus any files its writer adds (training adds its optimizer state, see train_checkpoint.h). A
// checkpoint is written into a staging folder and renamed into place, then the `latest` pointer is replaced
// atomically, so a crash never leaves a half-written checkpoint where a reader would take it.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "recur/model.h"
#include "recur/safetensors.h"

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
// Weights from a safetensors file into an existing model (names and shapes must match), read straight into the
// parameter buffer with their checksums verified. Non-finite values are refused, naming the tensor.
void load_weights(Model& model, const std::string& safetensors_path);
void load_weights(Model& model, const SafeTensorsFile& weights);
// The same from a file already read (`path` names it in errors). Non-finite values are refused, naming the tensor.
void load_weights(Model& model, const SafeTensors& weights, const std::string& path);
// Refuses (recur::Error naming the file) to write non-finite parameters.
void save_weights(const Model& model, const std::string& safetensors_path);

// The config.json of checkpoint folder `dir`, checked against the config in its weights' metadata (when present)
// and the embedding's shape, before any model is allocated.
ModelConfig checkpoint_config(const std::string& dir, const SafeTensors& weights);
ModelConfig checkpoint_config(const std::string& dir, const SafeTensorsHeader& weights);

// The first tensor of the model's layout holding a NaN or Inf in `buffer` (n_params values: parameters, gradients
// or moments), or null.
const ParamInfo* first_nonfinite(const Model& model, const float* buffer);
// Throws recur::Error naming `file` and `tensor` when any value is NaN/Inf (or negative, when `nonnegative`).
void check_tensor_values(const std::string& file, const std::string& tensor, const float* data, size_t n,
                         bool nonnegative);

}  // namespace recur
