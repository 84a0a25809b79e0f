// tools/sample.cpp: `recur sample`: continues a text prompt with a trained model from a checkpoint, in its tokenizer.
#include <cstdio>

#include "cli.h"
#include "recur/checkpoint.h"
#include "recur/model.h"
#include "recur/sample.h"
#include "recur/text_stream.h"
#include "recur/tokenizer.h"

namespace recur::cli {

namespace {

struct SampleCommandOptions {
  std::string checkpoint, precision = "f32", prompt = "And God said";
  SampleOptions sampling;
  bool ignore_eos = false;
};

void add_flags(CLI::App* app, SampleCommandOptions& o) {
  app->add_option("--checkpoint", o.checkpoint, "checkpoint folder or training --out folder")->required();
  add_precision_flag(app, o.precision);
  app->add_option("--prompt", o.prompt, "text to continue")->capture_default_str();
  app->add_option("--max_new_tokens", o.sampling.max_new_tokens, "tokens to generate")->capture_default_str();
  add_sampling_flags(app, o.sampling);
  app->add_flag("--ignore_eos", o.ignore_eos,
                "keep generating past the end-of-text token (by default it ends the text)");
}

int run_sample(const SampleCommandOptions& o) {
  Model model = load_for_inference(o.checkpoint, o.precision);
  std::unique_ptr<Tokenizer> tokenizer = checkpoint_tokenizer(o.checkpoint, model.config().vocab_size);
  TextStream text(*tokenizer, {}, o.ignore_eos ? -1 : tokenizer->eos());
  generate(model, tokenizer->encode(o.prompt), o.sampling, [&](int32_t token) { return !text.add(token); });
  std::string out = o.prompt + text.bytes() + "\n";  // bytes as generated: --ignore_eos may give NUL bytes
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace

Command add_sample_command(CLI::App& parent) {
  return make_command<SampleCommandOptions>(parent, "sample", "continue a prompt with a trained model", add_flags,
                                            run_sample);
}

}  // namespace recur::cli
