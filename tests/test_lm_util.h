// Helpers shared by the tokenizer, shard and eval suites: a seeded English-like text with some non-ASCII words, and
// a small SentencePiece model trained on it once per process.
#pragma once
#include <fstream>
#include <string>

#include "recur/rng.h"
#include "recur/tokenizer.h"
#include "test_util.h"

// `lines` lines of seeded words, with accents, CJK and digits among them.
inline std::string lm_sample_text(int lines, uint64_t seed = 5) {
  const char* words[] = {"the",   "earth", "and",   "God",  "said", "light", "was",  "good", "water", "day",
                         "night", "café",  "naïve", "日本", "über", "42",    "1611", "of",   "upon",  "face"};
  recur::Rng rng(seed);
  std::string text;
  for (int l = 0; l < lines; l++) {
    int n = 3 + (int)rng.uniform(9);
    for (int w = 0; w < n; w++) text += std::string(w ? " " : "") + words[rng.uniform(20)];
    text += ".\n";
  }
  return text;
}

// A BPE (or unigram) model of `vocab` pieces trained on lm_sample_text(400), serialized.
inline std::string lm_sample_tokenizer(const std::string& type = "bpe", int vocab = 320) {
  std::string dir = temp_dir("lm_tokenizer_" + type);
  std::ofstream(dir + "/text.txt") << lm_sample_text(400);
  recur::TokenizerTrainOptions options;
  options.model_type = type, options.vocab_size = vocab;
  std::string model = recur::train_sentencepiece({dir + "/text.txt"}, options);
  std::filesystem::remove_all(dir);
  return model;
}
