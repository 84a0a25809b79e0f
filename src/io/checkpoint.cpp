// Model checkpoint folders: staged, then renamed into place, then the `latest` pointer replaced atomically.
// Loading checks every file against the model config and says which file is wrong and what to do.
#include "recur/checkpoint.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "core/json_read.h"
#include "recur/error.h"
#include "recur/safetensors.h"

namespace recur {

namespace fs = std::filesystem;

const ParamInfo* first_nonfinite(const Model& model, const float* buffer) {
  for (const ParamInfo& p : model.param_table())
    for (size_t i = 0; i < p.numel; i++)
      if (!std::isfinite(buffer[p.offset + i])) return &p;
  return nullptr;
}

void check_tensor_values(const std::string& file, const std::string& tensor, const float* data, size_t n,
                         bool nonnegative) {
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) bad += !std::isfinite(data[i]) || (nonnegative && data[i] < 0);
  check(bad == 0, file, ": tensor \"", tensor, "\" holds ", bad, " of ", n, nonnegative ? " negative or" : "",
        " non-finite values (NaN/Inf); the run diverged or the file is damaged: use an earlier checkpoint");
}

void save_weights(const Model& model, const std::string& path) {
  SafeTensors st;
  for (const ParamInfo& p : model.param_table()) {
    check_tensor_values(path, p.name, model.params.data() + p.offset, p.numel, false);  // never write NaN
    st.add_f32(p.name, p.shape, model.params.data() + p.offset);
  }
  if (model.config().mor() && !model.mor_bias.empty())  // routing state, not trained
    st.add_f32("model.mor_bias", {(int64_t)model.mor_bias.size()}, model.mor_bias.data());
  st.metadata["format"] = "recur";
  st.metadata["config"] = model_config_to_json(model.config());
  safetensors_write(path, st);
}

// Refuses tensors of `order` that the model does not have (a file for another config).
static void check_names_known(const Model& model, const std::vector<std::string>& order, const std::string& path) {
  std::set<std::string> known;
  for (const ParamInfo& p : model.param_table()) known.insert(p.name);
  if (model.config().mor()) known.insert("model.mor_bias");
  for (const std::string& name : order)
    check(known.count(name) > 0, path, ": holds tensor \"", name,
          "\" that this model config does not have; use the matching config.json");
}

void load_weights(Model& model, const SafeTensors& st, const std::string& path) {
  for (const ParamInfo& p : model.param_table()) {
    const TensorData& t = st.get(p.name, p.shape);
    check(t.dtype == DType::f32, path, ": tensor \"", p.name, "\" must be F32");
    check_tensor_values(path, p.name, t.f32(), p.numel, false);
    std::copy(t.f32(), t.f32() + p.numel, model.params.data() + p.offset);
  }
  if (model.config().mor() && st.has("model.mor_bias")) {  // absent in older expert-choice files: 0
    const TensorData& t = st.get("model.mor_bias", {model.config().n_recursions});
    check_tensor_values(path, "model.mor_bias", t.f32(), t.numel(), false);
    model.mor_bias.assign(t.f32(), t.f32() + model.config().n_recursions);
  }
  check_names_known(model, st.order, path);
}

void load_weights(Model& model, const SafeTensorsFile& file) {
  const SafeTensorsHeader& h = file.header();
  check_names_known(model, h.order, h.source);
  std::vector<std::pair<std::string, float*>> reads;  // straight into the parameter buffer
  for (const ParamInfo& p : model.param_table()) {
    h.get(p.name, p.shape);
    reads.push_back({p.name, model.params.data() + p.offset});
  }
  bool bias = model.config().mor() && h.has("model.mor_bias");
  if (bias) {
    h.get("model.mor_bias", {model.config().n_recursions});
    model.mor_bias.resize(model.config().n_recursions);
    reads.push_back({"model.mor_bias", model.mor_bias.data()});
  }
  file.read_f32(reads);
  for (const ParamInfo& p : model.param_table())
    check_tensor_values(h.source, p.name, model.params.data() + p.offset, p.numel, false);
  if (bias) check_tensor_values(h.source, "model.mor_bias", model.mor_bias.data(), model.mor_bias.size(), false);
}

void load_weights(Model& model, const std::string& path) { load_weights(model, SafeTensorsFile(path)); }

std::string checkpoint_save_model(const std::string& out_dir, const Model& model, int64_t step,
                                  const CheckpointExtraFiles& extra_files) {
  fs::create_directories(out_dir);
  char name[32];
  std::snprintf(name, sizeof name, "step_%08lld", (long long)step);
  std::string final_dir = out_dir + "/" + name;
  std::string stage = final_dir + ".tmp";
  fs::remove_all(stage);
  fs::create_directories(stage);
  write_text_atomic(stage + "/config.json", model_config_to_json(model.config()) + "\n");
  save_weights(model, stage + "/model.safetensors");
  if (extra_files) extra_files(stage);
  fs::remove_all(final_dir);
  fs::rename(stage, final_dir);
  write_text_atomic(out_dir + "/latest", std::string(name) + "\n");
  return final_dir;
}

std::string checkpoint_resolve(const std::string& path) {
  check(path_exists(path), "checkpoint: \"", path, "\" does not exist; give a checkpoint folder or a training out_dir");
  if (fs::exists(path + "/model.safetensors")) return path;  // a directory there fails when it is read, naming it
  if (fs::exists(path + "/latest")) {
    std::string name = read_file_text(path + "/latest", 4096);
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    // a plain folder name (step_*), so nothing in the file reaches a path unchecked
    bool plain =
        !name.empty() && name.size() <= 64 && name[0] != '.' &&
        std::all_of(name.begin(), name.end(), [](char ch) { return std::isalnum((unsigned char)ch) || ch == '_'; });
    check(plain && fs::exists(path + "/" + name + "/model.safetensors"), "checkpoint: ", path, "/latest names ",
          brief_json(name), ", which is not a checkpoint folder; point --resume at a step_* folder");
    return path + "/" + name;
  }
  throw Error("checkpoint: \"" + path +
              "\" holds neither model.safetensors nor a `latest` pointer; "
              "give a step_* checkpoint folder or the out_dir of a training run");
}

// config.json checked against the config in the weights' metadata and their embedding's shape (when present).
static ModelConfig checked_config(const std::string& dir, const std::map<std::string, std::string>& metadata,
                                  const std::vector<int64_t>* embed_shape) {
  ModelConfig config = model_config_from_file(dir + "/config.json");
  auto saved = metadata.find("config");  // absent in files of other tools
  check(saved == metadata.end() ||
            model_config_to_json(model_config_from_json(saved->second)) == model_config_to_json(config),
        dir, ": config.json differs from the config stored in model.safetensors; restore the config.json saved with ",
        "these weights");
  if (embed_shape)  // the shapes before the model is allocated
    check(*embed_shape == std::vector<int64_t>{config.vocab_size, config.d_model}, dir,
          ": model.safetensors does not hold a model of config.json's vocab_size and d_model; use the matching ",
          "config.json");
  return config;
}

ModelConfig checkpoint_config(const std::string& dir, const SafeTensors& weights) {
  const char* embed = "model.embed_tokens.weight";
  return checked_config(dir, weights.metadata, weights.has(embed) ? &weights.get(embed).shape : nullptr);
}

ModelConfig checkpoint_config(const std::string& dir, const SafeTensorsHeader& weights) {
  const char* embed = "model.embed_tokens.weight";
  return checked_config(dir, weights.metadata, weights.has(embed) ? &weights.get(embed).shape : nullptr);
}

Model checkpoint_load_model(const std::string& path) {
  std::string dir = checkpoint_resolve(path);
  SafeTensorsFile weights(dir + "/model.safetensors");
  Model model(checkpoint_config(dir, weights.header()), ModelInit::zeros);
  load_weights(model, weights);
  return model;
}

}  // namespace recur
