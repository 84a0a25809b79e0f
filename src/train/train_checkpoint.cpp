// Training checkpoints: the model checkpoint of src/io with the optimizer moments and the training settings added
// into the same staging folder, so that the whole checkpoint is published at once.
#include "recur/train_checkpoint.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "recur/error.h"
#include "recur/safetensors.h"

namespace recur {

namespace fs = std::filesystem;

static void save_optimizer_state(const std::string& dir, const Model& model, const AdamW& opt,
                                 const TrainConfig& train_config) {
  SafeTensors st;
  for (const ParamInfo& p : model.param_table()) {
    st.add_f32(p.name + ".exp_avg", p.shape, opt.m.data() + p.offset);
    st.add_f32(p.name + ".exp_avg_sq", p.shape, opt.v.data() + p.offset);
  }
  st.metadata["step"] = std::to_string(opt.step);
  safetensors_write(dir + "/optimizer.safetensors", st);
  nlohmann::json state = {{"step", opt.step},
                          {"train_config", nlohmann::json::parse(train_config_to_json(train_config))}};
  write_text_atomic(dir + "/train_state.json", state.dump(2) + "\n");
}

std::string checkpoint_save_training(const std::string& out_dir, const Model& model, const AdamW& opt,
                                     const TrainConfig& train_config) {
  return checkpoint_save_model(out_dir, model, opt.step, [&](const std::string& staging_dir) {
    save_optimizer_state(staging_dir, model, opt, train_config);
  });
}

// The step and training settings of train_state.json.
static void load_train_state(const std::string& dir, AdamW& opt, TrainConfig& train_config) {
  try {
    nlohmann::json state = nlohmann::json::parse(read_file_text(dir + "/train_state.json"));
    train_config = train_config_from_json(state.at("train_config").dump());
    opt.step = state.at("step").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(dir + "/train_state.json is damaged (" + e.what() + "); resume from an earlier checkpoint");
  }
}

static void load_optimizer_moments(const std::string& dir, const Model& model, AdamW& opt) {
  SafeTensors st = safetensors_read(dir + "/optimizer.safetensors");
  check(st.metadata.count("step") && st.metadata.at("step") == std::to_string(opt.step), dir,
        ": optimizer.safetensors and train_state.json disagree on the step; the checkpoint is inconsistent");
  opt.init(model.n_params());
  opt.step = std::stoll(st.metadata.at("step"));
  for (const ParamInfo& p : model.param_table()) {
    const TensorData& m = st.get(p.name + ".exp_avg", p.shape);
    const TensorData& v = st.get(p.name + ".exp_avg_sq", p.shape);
    std::copy(m.f32(), m.f32() + p.numel, opt.m.data() + p.offset);
    std::copy(v.f32(), v.f32() + p.numel, opt.v.data() + p.offset);
  }
}

void checkpoint_load_training(const std::string& path, Model& model, AdamW& opt, TrainConfig& train_config) {
  std::string dir = checkpoint_resolve(path);
  ModelConfig saved = model_config_from_file(dir + "/config.json");
  check(model_config_to_json(saved) == model_config_to_json(model.config()),
        "resume: the checkpoint's config.json differs from the model being trained; resume with the checkpoint's "
        "config");
  load_weights(model, dir + "/model.safetensors");
  check(fs::exists(dir + "/optimizer.safetensors") && fs::exists(dir + "/train_state.json"), "resume: ", dir,
        " has no optimizer state (weights only); start a new run from it instead of resuming");
  load_train_state(dir, opt, train_config);
  load_optimizer_moments(dir, model, opt);
}

}  // namespace recur
