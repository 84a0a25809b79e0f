// The tokenizer of a checkpoint folder: its tokenizer.model, or byte-level when it has none (apart from
// tokenizer.cpp so that the file readers there build without the model code, as the fuzz targets need).
#include <filesystem>

#include "recur/checkpoint.h"
#include "recur/error.h"
#include "recur/tokenizer.h"

namespace recur {

std::unique_ptr<Tokenizer> checkpoint_tokenizer(const std::string& checkpoint, int model_vocab_size) {
  std::string path = checkpoint_resolve(checkpoint) + "/" + kTokenizerFile;
  if (!std::filesystem::exists(path)) {
    check(model_vocab_size >= 256, checkpoint, ": the model's vocab_size is ", model_vocab_size,
          " and the checkpoint has no ", kTokenizerFile,
          ", so its text is byte-level, which needs vocab_size >= 256; "
          "copy the tokenizer.model it was trained with into the checkpoint folder");
    return make_byte_tokenizer();
  }
  std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(path);
  check(tokenizer->vocab_size() == model_vocab_size, path, " has ", tokenizer->vocab_size(),
        " pieces but the model's vocab_size is ", model_vocab_size,
        "; the tokenizer belongs to another model: copy the one the model was trained with");
  return tokenizer;
}

}  // namespace recur
