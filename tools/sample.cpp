// tools/sample.cpp: `recur sample`: continues a text prompt with a trained byte-level model from a checkpoint.
#include <cstdio>
#include <memory>

#include "cli.h"
#include "recur/checkpoint.h"
#include "recur/model.h"
#include "recur/sample.h"

namespace recur::cli {

namespace {

struct SampleCommandOptions {
  std::string checkpoint, prompt = "And God said";
  SampleOptions sampling;
};

int run_sample(const SampleCommandOptions& o) {
  Model model = checkpoint_load_model(o.checkpoint);
  std::vector<int32_t> out = generate(model, bytes_to_tokens(o.prompt), o.sampling);
  std::printf("%s%s\n", o.prompt.c_str(), tokens_to_text(out).c_str());
  return 0;
}

}  // namespace

Command add_sample_command(CLI::App& parent) {
  CLI::App* cmd = parent.add_subcommand("sample", "continue a prompt with a trained model");
  auto o = std::make_shared<SampleCommandOptions>();
  cmd->add_option("--checkpoint", o->checkpoint, "checkpoint folder or training --out folder")->required();
  cmd->add_option("--prompt", o->prompt, "text to continue")->capture_default_str();
  cmd->add_option("--max_new_tokens", o->sampling.max_new_tokens, "bytes to generate")->capture_default_str();
  add_sampling_flags(cmd, o->sampling);
  return {cmd, [o] { return run_sample(*o); }};
}

}  // namespace recur::cli
