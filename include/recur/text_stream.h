// Generated tokens as text: UTF-8 decoding that survives split and invalid sequences, and TextStream, which
// matches stop strings on the decoded text (the server's completions, src/server; the harness's generation tasks,
// src/experiment/harness.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "recur/tokenizer.h"

namespace recur {

// Bytes -> UTF-8 text. Invalid bytes become U+FFFD (one per maximal invalid subpart, as the Unicode standard and
// WHATWG decoders do); an incomplete sequence at the end is kept for the next piece of a stream unless `last`.
class Utf8Decoder {
 public:
  std::string decode(std::string_view bytes, bool last);

 private:
  std::string pending_;
};

// Generated text as its tokens arrive, the one path of the server's whole and streamed completions and of the
// harness's generation tasks (byte-level or SentencePiece): the tokens' bytes (Tokenizer::decode, which
// concatenates per token) are cut before the earliest stop string in them (as lm-evaluation-harness and
// llama-server cut), and released up to the last complete UTF-8 sequence that no stop string can still claim.
// The end-of-text token (`end_token`, the tokenizer's eos; -1: none) ends the text as well, its bytes left out: the
// one rule for where generated text ends, in the harness, `recur sample` and the server. Empty stop strings are
// ignored.
class TextStream {
 public:
  TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop, int32_t end_token);
  // Adds generated tokens; false once the text holds a stop string or end_token came (the text ends before it;
  // generation should).
  bool add(const std::vector<int32_t>& tokens);
  bool add(int32_t token) { return add(std::vector<int32_t>{token}); }  // a StopAfter callback's one token
  // The text released since the last call; `last` (the completion is over) releases the rest.
  std::string take(bool last);
  // Every byte so far, cut before the stop string once one appeared, as generated (no UTF-8 repair).
  const std::string& bytes() const { return bytes_; }

 private:
  size_t held_back() const;  // the longest end of the bytes that begins a stop string
  const Tokenizer& tokenizer_;
  std::vector<std::string> stop_;
  int32_t end_token_;
  std::string bytes_;    // decoded so far, cut before the stop string once one appeared
  size_t released_ = 0;  // bytes_[0, released_) went to utf8_
  bool stopped_ = false;
  Utf8Decoder utf8_;
};

}  // namespace recur
