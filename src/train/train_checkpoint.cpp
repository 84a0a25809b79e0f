// Training checkpoints: the model checkpoint of src/io with the optimizer moments and the training settings added
// into the same staging folder, so that the whole checkpoint is published at once.
#include "recur/train_checkpoint.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/config_keys.h"
#include "core/json_read.h"
#include "recur/error.h"
#include "recur/safetensors.h"
#include "recur/tokenizer.h"

namespace recur {

namespace fs = std::filesystem;

static void save_optimizer_state(const std::string& dir, const Model& model, const AdamW& opt,
                                 const TrainConfig& train_config, const TrainExtras& extras) {
  SafeTensors st;
  std::string file = dir + "/optimizer.safetensors";
  for (const ParamInfo& p : model.param_table()) {
    check_tensor_values(file, p.name + ".exp_avg", opt.m.data() + p.offset, p.numel, false);  // never write NaN
    check_tensor_values(file, p.name + ".exp_avg_sq", opt.v.data() + p.offset, p.numel, true);
    st.add_f32(p.name + ".exp_avg", p.shape, opt.m.data() + p.offset);
    st.add_f32(p.name + ".exp_avg_sq", p.shape, opt.v.data() + p.offset);
  }
  st.metadata["step"] = std::to_string(opt.step);
  safetensors_write(file, st);
  nlohmann::json state = {{"step", opt.step},
                          {"train_config", nlohmann::json::parse(train_config_to_json(train_config))}};
  if (!extras.data_position.empty()) state["data"] = nlohmann::json::parse(extras.data_position);
  write_text_atomic(dir + "/train_state.json", state.dump(2) + "\n");
  if (!extras.tokenizer_model.empty())
    write_file_atomic(dir + "/" + kTokenizerFile, extras.tokenizer_model.data(), extras.tokenizer_model.size());
}

std::string checkpoint_save_training(const std::string& out_dir, const Model& model, const AdamW& opt,
                                     const TrainConfig& train_config, const TrainExtras& extras) {
  return checkpoint_save_model(out_dir, model, opt.step, [&](const std::string& staging_dir) {
    save_optimizer_state(staging_dir, model, opt, train_config, extras);
  });
}

// The step, training settings and data position of train_state.json; every error names the file.
static void load_train_state(const std::string& dir, AdamW& opt, TrainConfig& train_config,
                             std::string& data_position) {
  std::string path = dir + "/train_state.json";
  try {
    nlohmann::json state = parse_json_strict(read_file_checked(path, kMaxConfigBytes), path, kMaxConfigBytes);
    check(state.is_object() && state.contains("train_config") && state.contains("step"),
          "expected an object with \"step\" and \"train_config\"");
    read_json_value(state["step"], opt.step, "train state", "step");
    check(opt.step >= 0, "\"step\" must be >= 0");
    train_config = train_config_from_json(state["train_config"].dump());
    check(!state.contains("data") || state["data"].is_object(), "\"data\" must be an object");
    data_position = state.contains("data") ? state["data"].dump() : "";
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (in " + path + "); resume from an earlier checkpoint");
  }
}

static void load_optimizer_moments(const std::string& dir, const Model& model, AdamW& opt) {
  std::string file = dir + "/optimizer.safetensors";
  SafeTensors st = safetensors_read(file);
  check(st.metadata.count("step") && st.metadata.at("step") == std::to_string(opt.step), dir,
        ": optimizer.safetensors and train_state.json disagree on the step; the checkpoint is inconsistent");
  check(st.order.size() == 2 * model.param_table().size(), file, ": holds ", st.order.size(),
        " tensors but this model's optimizer has ", 2 * model.param_table().size(),
        "; the file belongs to another model or is damaged");
  int64_t step = opt.step;
  opt.init(model.n_params());
  opt.step = step;
  for (const ParamInfo& p : model.param_table()) {
    const TensorData& m = st.get(p.name + ".exp_avg", p.shape);
    const TensorData& v = st.get(p.name + ".exp_avg_sq", p.shape);
    check(m.dtype == DType::f32 && v.dtype == DType::f32, file, ": moments of \"", p.name, "\" must be F32");
    check_tensor_values(file, p.name + ".exp_avg", m.f32(), p.numel, false);
    check_tensor_values(file, p.name + ".exp_avg_sq", v.f32(), p.numel, true);
    std::copy(m.f32(), m.f32() + p.numel, opt.m.data() + p.offset);
    std::copy(v.f32(), v.f32() + p.numel, opt.v.data() + p.offset);
  }
}

void checkpoint_load_training(const std::string& path, Model& model, AdamW& opt, TrainConfig& train_config,
                              TrainExtras* extras) {
  std::string dir = checkpoint_resolve(path);
  SafeTensors weights = safetensors_read(dir + "/model.safetensors");
  ModelConfig saved = checkpoint_config(dir, weights);
  check(model_config_to_json(saved) == model_config_to_json(model.config()),
        "resume: the checkpoint's config.json differs from the model being trained; resume with the checkpoint's "
        "config");
  load_weights(model, weights, dir + "/model.safetensors");
  check(fs::exists(dir + "/optimizer.safetensors") && fs::exists(dir + "/train_state.json"), "resume: ", dir,
        " has no optimizer state (weights only); start a new run from it instead of resuming");
  TrainExtras found;
  load_train_state(dir, opt, train_config, found.data_position);
  load_optimizer_moments(dir, model, opt);
  if (fs::exists(dir + "/" + kTokenizerFile))
    found.tokenizer_model = read_file_checked(dir + "/" + kTokenizerFile, uint64_t(256) << 20);
  if (extras) *extras = found;
}

}  // namespace recur
