// Guards of a training run (issue 17): a diverging run never publishes a non-finite checkpoint and stops naming the
// step, or skips such steps when asked; readers refuse NaN weights and bad moments; one writer per run folder.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/config_keys.h"
#include "recur/checkpoint.h"
#include "recur/error.h"
#include "recur/run_lock.h"
#include "recur/safetensors.h"
#include "recur/train.h"
#include "recur/train_checkpoint.h"
#include "test_util.h"

using namespace recur;
namespace fs = std::filesystem;

namespace {

ModelConfig guard_model() {
  ModelConfig c;
  c.d_model = 32, c.n_heads = 2, c.n_kv_heads = 2, c.d_ff = 64, c.n_layers = 2, c.max_seq_len = 32;
  return c;
}

// The recipe for divergence: --lr 1e6 --warmup_steps 0 --save_every 1.
TrainConfig diverging_training() {
  TrainConfig t;
  t.batch_size = 2, t.seq_len = 32, t.steps = 8, t.warmup_steps = 0, t.lr = 1e6f, t.save_every = 1;
  t.eval_every = 0, t.eval_batches = 1, t.log_every = 0;
  return t;
}

std::vector<uint8_t> corpus_bytes() {
  std::string text;
  for (int i = 0; i < 200; i++) text += "In the beginning God created the heaven and the earth. ";
  return std::vector<uint8_t>(text.begin(), text.end());
}

TEST(Guards, DivergingRunStopsAndNeverPublishesNonFinite) {
  std::string dir = temp_dir("diverge");
  std::vector<uint8_t> text = corpus_bytes();
  Model model(guard_model());
  TrainConfig t = diverging_training();
  TrainOptions o;
  o.out_dir = dir, o.quiet = true;
  std::string message = error_of([&] { train_run(model, t, text_batches(text, t), {}, o); });
  EXPECT_NE(message.find("non-finite"), std::string::npos) << message;
  EXPECT_NE(message.find("at step"), std::string::npos) << message;
  int published = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename().string().rfind("step_", 0) != 0) continue;
    Model loaded(guard_model());  // readers refuse non-finite weights and moments, so loading proves them finite
    AdamW opt;
    TrainConfig saved;
    checkpoint_load_training(entry.path().string(), loaded, opt, saved);
    published++;
  }
  EXPECT_GE(published, 1);
  checkpoint_resolve(dir);  // `latest` names the last good step
  checkpoint_load_model(dir);
  fs::remove_all(dir);
}

TEST(Guards, SkipNonFiniteStepsFinishesTheRun) {
  std::string dir = temp_dir("skip");
  std::vector<uint8_t> text = corpus_bytes();
  Model model(guard_model());
  TrainConfig t = diverging_training();
  t.skip_nonfinite_steps = true;
  TrainOptions o;
  o.out_dir = dir, o.quiet = true;
  StepMetrics last = train_run(model, t, text_batches(text, t), {}, o);
  EXPECT_EQ(last.step, 8);
  EXPECT_EQ(first_nonfinite(model, model.params.data()), nullptr);
  checkpoint_load_model(dir);
  EXPECT_NE(train_config_to_json(t).find("skip_nonfinite_steps"), std::string::npos);
  // runs without the option write train_state.json as before
  EXPECT_EQ(train_config_to_json(TrainConfig{}).find("skip_nonfinite_steps"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Guards, ReadersRefuseNonFiniteWeightsAndBadMoments) {
  std::string dir = temp_dir("nanread");
  Model model(guard_model());
  AdamW opt;
  opt.init(model.n_params());
  opt.step = 1;
  std::string saved = checkpoint_save_training(dir, model, opt, TrainConfig{});
  SafeTensors weights = safetensors_read(saved + "/model.safetensors");
  reinterpret_cast<float*>(weights.tensors.at("model.norm.weight").bytes.data())[3] = NAN;
  safetensors_write(saved + "/model.safetensors", weights);
  std::string message = error_of([&] { checkpoint_load_model(dir); });
  EXPECT_NE(message.find("\"model.norm.weight\" holds 1 of 32 non-finite"), std::string::npos) << message;
  checkpoint_save_training(dir, model, opt, TrainConfig{});  // good weights again
  SafeTensors moments = safetensors_read(saved + "/optimizer.safetensors");
  reinterpret_cast<float*>(moments.tensors.at("model.norm.weight.exp_avg_sq").bytes.data())[0] = -1.0f;
  safetensors_write(saved + "/optimizer.safetensors", moments);
  TrainConfig tc;
  message = error_of([&] { checkpoint_load_training(dir, model, opt, tc); });
  EXPECT_NE(message.find("\"model.norm.weight.exp_avg_sq\" holds 1 of 32 negative or non-finite"), std::string::npos)
      << message;
  moments.metadata["step"] = "1";
  moments.add_f32("stranger", {1}, model.params.data());  // extra tensors are refused as in model.safetensors
  safetensors_write(saved + "/optimizer.safetensors", moments);
  message = error_of([&] { checkpoint_load_training(dir, model, opt, tc); });
  EXPECT_NE(message.find("optimizer.safetensors holds " + std::to_string(8 * model.n_params() + 4) + " bytes"),
            std::string::npos)
      << message;
  // and nothing non-finite is ever written
  model.params[5] = INFINITY;
  message = error_of([&] { save_weights(model, dir + "/w.safetensors"); });
  EXPECT_NE(message.find("non-finite"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(dir + "/w.safetensors"));
  fs::remove_all(dir);
}

TEST(Guards, ResumeOfAnotherModelIsRefusedBeforeReadingTensors) {
  std::string dir = temp_dir("resumefits");
  Model model(guard_model());
  AdamW opt;
  opt.init(model.n_params());
  opt.step = 1;
  std::string saved = checkpoint_save_training(dir, model, opt, TrainConfig{});
  ModelConfig wider = guard_model();
  wider.d_model = 64;
  std::string message = error_of([&] { check_resume_fits(dir, Model(wider, ModelInit::zeros)); });
  EXPECT_NE(message.find(saved + "/config.json differs from the model being trained"), std::string::npos) << message;
  // moments of a smaller model under this config.json: refused from the file's size, naming both counts
  Model narrow([] {
    ModelConfig c = guard_model();
    c.d_ff = 32;
    return c;
  }());
  AdamW small;
  small.init(narrow.n_params());
  SafeTensors moments;
  for (const ParamInfo& p : narrow.param_table()) moments.add_f32(p.name + ".exp_avg", p.shape, small.m.data());
  for (const ParamInfo& p : narrow.param_table()) moments.add_f32(p.name + ".exp_avg_sq", p.shape, small.v.data());
  safetensors_write(saved + "/optimizer.safetensors", moments);
  message = error_of([&] { check_resume_fits(dir, model); });
  EXPECT_NE(message.find("optimizer.safetensors holds " + std::to_string(8 * narrow.n_params()) + " bytes"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find(std::to_string(model.n_params())), std::string::npos) << message;
  std::ofstream(dir + "/latest", std::ios::binary) << std::string("step_1\n\0more", 12);  // a NUL in the pointer
  message = error_of([&] { check_resume_fits(dir, model); });
  EXPECT_NE(message.find("latest names \"step_1\\n\\u0000more\", which is not a checkpoint folder; point"),
            std::string::npos)
      << message;
  std::ofstream(dir + "/latest") << fs::path(saved).filename().string() << "\n";
  std::ofstream(saved + "/model.safetensors", std::ios::binary) << std::string(16, '\xff');
  message = error_of([&] { check_resume_fits(dir, model); });
  EXPECT_NE(message.find("model.safetensors: its header length"), std::string::npos) << message;
  fs::remove_all(dir);
}

// Runs `fn` in a child process; its exit status (0: the child's expectations held).
int in_child(const std::function<bool()>& fn) {
  pid_t pid = fork();
  if (pid == 0) _exit(fn() ? 0 : 1);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

TEST(Guards, RunFolderHasOneWriter) {
  std::string dir = temp_dir("lock");
  std::string parent_pid = std::to_string(getpid());
  {
    RunLock held(dir);
    int status = in_child([&] {
      std::string message = error_of([&] { RunLock second(dir); });
      return message.find("in use by another recur process (pid " + parent_pid) != std::string::npos;
    });
    EXPECT_EQ(status, 0) << "the second writer was not refused with the holder's pid";
    // train_run (so recur train, --resume and recur experiment) takes the lock before anything else
    Model model(guard_model());
    TrainConfig t = diverging_training();
    TrainOptions o;
    o.out_dir = dir, o.resume_from = dir, o.quiet = true;
    status = in_child([&] {
      std::vector<uint8_t> text = corpus_bytes();
      return error_of([&] { train_run(model, t, text_batches(text, t), {}, o); }).find("in use") != std::string::npos;
    });
    EXPECT_EQ(status, 0);
  }
  // released by the OS when its holder dies without unlocking
  EXPECT_EQ(in_child([&] {
              new RunLock(dir);  // never destroyed: the process ends holding it
              return true;
            }),
            0);
  RunLock again(dir);
  fs::remove_all(dir);
}

}  // namespace
