// tools/sample.cpp: `recur sample`: continues a text prompt with a trained model from a checkpoint, in its tokenizer.
#include <cstdio>

#include "cli.h"
#include "recur/checkpoint.h"
#include "recur/model.h"
#include "recur/sample.h"
#include "recur/tokenizer.h"

namespace recur::cli {

namespace {

struct SampleCommandOptions {
  std::string checkpoint, precision = "f32", prompt = "And God said";
  SampleOptions sampling;
};

void add_flags(CLI::App* app, SampleCommandOptions& o) {
  app->add_option("--checkpoint", o.checkpoint, "checkpoint folder or training --out folder")->required();
  add_precision_flag(app, o.precision);
  app->add_option("--prompt", o.prompt, "text to continue")->capture_default_str();
  app->add_option("--max_new_tokens", o.sampling.max_new_tokens, "tokens to generate")->capture_default_str();
  add_sampling_flags(app, o.sampling);
}

int run_sample(const SampleCommandOptions& o) {
  Model model = load_for_inference(o.checkpoint, o.precision);
  std::unique_ptr<Tokenizer> tokenizer = checkpoint_tokenizer(o.checkpoint, model.config().vocab_size);
  std::vector<int32_t> out = generate(model, tokenizer->encode(o.prompt), o.sampling);
  std::printf("%s%s\n", o.prompt.c_str(), tokenizer->decode(out).c_str());
  return 0;
}

}  // namespace

Command add_sample_command(CLI::App& parent) {
  return make_command<SampleCommandOptions>(parent, "sample", "continue a prompt with a trained model", add_flags,
                                            run_sample);
}

}  // namespace recur::cli
