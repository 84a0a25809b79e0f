// Training checkpoints: the model checkpoint of src/io with the optimizer moments and the training settings added
// into the same staging folder, so that the whole checkpoint is published at once.
#include "recur/train_checkpoint.h"

#include <filesystem>
#include <fstream>
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

// The bytes of tensor data in the safetensors file `path`: its size less the 8-byte header length and the header,
// from the first 8 bytes alone.
static uint64_t safetensors_data_bytes(const std::string& path) {
  uint64_t size = checked_file_size(path, ~uint64_t(0)), header = 0;
  std::ifstream in(path, std::ios::binary);
  uint8_t length[8] = {};
  check(size >= 8 && in.read((char*)length, 8).good(), path, ": ", size,
        " bytes, too short for a safetensors file; the checkpoint is damaged: resume from an earlier one");
  for (int i = 0; i < 8; i++) header |= (uint64_t)length[i] << (8 * i);
  check(header <= size - 8, path, ": its header length ", header, " exceeds the file's ", size,
        " bytes; the checkpoint is damaged: resume from an earlier one");
  return size - 8 - header;
}

void check_resume_fits(const std::string& path, const Model& model) {
  std::string dir = checkpoint_resolve(path);
  check(model_config_to_json(model_config_from_file(dir + "/config.json")) == model_config_to_json(model.config()),
        "resume: ", dir, "/config.json differs from the model being trained; resume with the checkpoint's config");
  check(fs::exists(dir + "/optimizer.safetensors") && fs::exists(dir + "/train_state.json"), "resume: ", dir,
        " has no optimizer state (weights only); start a new run from it instead of resuming");
  uint64_t weights = safetensors_data_bytes(dir + "/model.safetensors"), params = model.n_params();
  check(weights >= 4 * params, dir, "/model.safetensors holds ", weights, " bytes of tensors, fewer than the ",
        4 * params, " of this config's ", params,
        " F32 parameters; the weights belong to another model or are "
        "damaged: resume from the checkpoint they were trained with");
  uint64_t moments = safetensors_data_bytes(dir + "/optimizer.safetensors");
  check(moments == 8 * params, dir, "/optimizer.safetensors holds ", moments, " bytes of tensors, not the ", 8 * params,
        " of two F32 moments per parameter of this config's ", params, "; the file belongs to another ",
        "model or is damaged: resume from an earlier checkpoint");
}

void checkpoint_load_training(const std::string& path, Model& model, AdamW& opt, TrainConfig& train_config,
                              TrainExtras* extras) {
  check_resume_fits(path, model);  // before any tensor is read
  std::string dir = checkpoint_resolve(path);
  SafeTensors weights = safetensors_read(dir + "/model.safetensors");
  checkpoint_config(dir, weights);  // config.json agrees with the weights' metadata
  load_weights(model, weights, dir + "/model.safetensors");
  TrainExtras found;
  load_train_state(dir, opt, train_config, found.data_position);
  load_optimizer_moments(dir, model, opt);
  if (fs::exists(dir + "/" + kTokenizerFile))
    found.tokenizer_model = read_file_checked(dir + "/" + kTokenizerFile, uint64_t(256) << 20);
  if (extras) *extras = found;
}

}  // namespace recur
