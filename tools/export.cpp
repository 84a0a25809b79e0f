// tools/export.cpp: `recur export --format gguf`: writes a checkpoint as a llama.cpp GGUF (recur/gguf.h), unrolled
// (one block per layer application) with the checkpoint's vocabulary (bytes, or its SentencePiece pieces for
// llama.cpp's SentencePiece tokenizer), so llama.cpp runs recur-trained models.
#include <cstdio>
#include <filesystem>

#include "cli.h"
#include "recur/checkpoint.h"
#include "recur/error.h"
#include "recur/gguf.h"
#include "recur/tokenizer.h"

namespace recur::cli {

namespace {

struct ExportOptions {
  std::string format = "gguf", checkpoint, out, dtype = "f32";
};

void add_flags(CLI::App* app, ExportOptions& o) {
  app->add_option("--format", o.format, "file format: gguf (llama.cpp)")->capture_default_str();
  app->add_option("--checkpoint", o.checkpoint, "checkpoint folder or training --out folder")->required();
  app->add_option("--out", o.out, "file to write, e.g. model.gguf")->required();
  app->add_option("--dtype", o.dtype, "type of the matrices: f32, f16 or bf16 (norm weights stay f32)")
      ->capture_default_str();
}

int run_export(const ExportOptions& o) {
  check(o.format == "gguf", "export: unknown --format \"", o.format, "\"; the only format is gguf");
  check(o.dtype == "f32" || o.dtype == "f16" || o.dtype == "bf16", "export: unknown --dtype \"", o.dtype,
        "\"; use f32, f16 or bf16");
  GgmlType matrices = o.dtype == "f32" ? GgmlType::f32 : o.dtype == "f16" ? GgmlType::f16 : GgmlType::bf16;
  std::string dir = checkpoint_resolve(o.checkpoint);
  // the config alone first, so that a model llama.cpp cannot run is refused before its weights are read
  gguf_check_exportable(model_config_from_file(dir + "/config.json"));
  Model model = checkpoint_load_model(dir);
  std::unique_ptr<Tokenizer> tokenizer = checkpoint_tokenizer(dir, model.config().vocab_size);
  std::string name = std::filesystem::path(std::filesystem::absolute(o.checkpoint)).lexically_normal().string();
  GgufFile file = gguf_from_model(model, std::filesystem::path(name).filename().string(),
                                  gguf_vocabulary_of(*tokenizer, model.config().vocab_size), matrices);
  gguf_write(o.out, file);
  std::printf("recur export: %s -> %s (llama, %zu blocks for %d unique layers, %zu tensors, %s, %s vocabulary)\n",
              dir.c_str(), o.out.c_str(), model.schedule().size(), model.config().n_unique_layers(),
              file.tensors.size(), o.dtype.c_str(), tokenizer->describe().c_str());
  return 0;
}

}  // namespace

Command add_export_command(CLI::App& parent) {
  return make_command<ExportOptions>(parent, "export", "write a checkpoint in another format (gguf: llama.cpp)",
                                     add_flags, run_export);
}

}  // namespace recur::cli
