// Generated text (include/recur/text_stream.h): UTF-8 decoding replaces invalid bytes and completes split
// characters across stream pieces; a TextStream releases the same text however its tokens arrive (byte-level and
// SentencePiece), cuts it before the earliest stop string or the end-of-text token and keeps the raw bytes for the
// harness.
#include "recur/text_stream.h"

#include <gtest/gtest.h>

#include "test_lm_util.h"

using namespace recur;

namespace {

const Tokenizer& bytes() {
  static std::unique_ptr<Tokenizer> tokenizer = make_byte_tokenizer();
  return *tokenizer;
}

}  // namespace

TEST(TextStream, Utf8DecodingReplacesInvalidBytesAndJoinsPieces) {
  EXPECT_EQ(Utf8Decoder().decode("h\xC3\xA9", true), "h\xC3\xA9");
  EXPECT_EQ(Utf8Decoder().decode("\xFF\x41\xE2\x82", true),
            "\xEF\xBF\xBD"
            "A\xEF\xBF\xBD");
  EXPECT_EQ(Utf8Decoder().decode("\xED\xA0\x80", true), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  Utf8Decoder stream;
  EXPECT_EQ(stream.decode("a\xE2\x82", false), "a");  // the euro sign is still incomplete
  EXPECT_EQ(stream.decode("\xAC", false), "\xE2\x82\xAC");
  EXPECT_EQ(stream.decode("\xF0", true), "\xEF\xBF\xBD");
}

namespace {

// The text a TextStream releases for `tokens` fed in pieces of `step` (0: all at once), joined; `pieces` gets
// each non-empty release, and `stopped` whether a stop string ended it.
std::string stream_text(const Tokenizer& t, const std::vector<int32_t>& tokens, std::vector<std::string> stop,
                        size_t step, std::vector<std::string>* pieces = nullptr, bool* stopped = nullptr) {
  TextStream stream(t, std::move(stop), -1);
  std::string text;
  bool more = true;
  for (size_t i = 0; i < tokens.size() && more; i += step ? step : tokens.size()) {
    size_t end = std::min(tokens.size(), i + (step ? step : tokens.size()));
    more = stream.add(std::vector<int32_t>(tokens.begin() + i, tokens.begin() + end));
    std::string piece = stream.take(false);
    if (!piece.empty() && pieces) pieces->push_back(piece);
    text += piece;
  }
  std::string rest = stream.take(true);
  if (!rest.empty() && pieces) pieces->push_back(rest);
  if (stopped) *stopped = !more;
  return text + rest;
}

// Every released piece is whole UTF-8 (a decoder with nothing pending gives it back unchanged).
bool whole_utf8(const std::vector<std::string>& pieces) {
  for (const std::string& p : pieces)
    if (Utf8Decoder().decode(p, false) != p) return false;
  return true;
}

}  // namespace

TEST(TextStream, TextStreamReleasesWholeCharactersAndTheSameText) {
  std::unique_ptr<Tokenizer> sp = tokenizer_from_serialized(lm_sample_tokenizer(), "test");
  const std::string text = "the café und 日本 \xF0\x9F\x98\x80 naïve\xFF end";  // an emoji as byte pieces; 0xFF
  for (const Tokenizer* t : std::vector<const Tokenizer*>{&bytes(), sp.get()}) {
    std::vector<int32_t> tokens = t->encode(text);
    std::string whole = stream_text(*t, tokens, {}, 0);
    EXPECT_EQ(whole, Utf8Decoder().decode(text, true)) << t->describe();
    for (size_t step : {1, 2, 3}) {
      std::vector<std::string> pieces;
      EXPECT_EQ(stream_text(*t, tokens, {}, step, &pieces), whole) << t->describe() << " step " << step;
      EXPECT_TRUE(whole_utf8(pieces)) << t->describe() << " step " << step;
      EXPECT_GT(pieces.size(), 3u);
    }
  }
  // the emoji's four byte pieces: nothing is released until the last one arrives
  std::vector<int32_t> emoji = sp->encode("\xF0\x9F\x98\x80");
  ASSERT_EQ(emoji.size(), 4u);
  TextStream stream(*sp, {}, -1);
  for (int i = 0; i < 3; i++) {
    stream.add({emoji[i]});
    EXPECT_EQ(stream.take(false), "");
  }
  stream.add({emoji[3]});
  EXPECT_EQ(stream.take(false), "\xF0\x9F\x98\x80");
}

TEST(TextStream, TextStreamCutsBeforeTheFirstStopString) {
  std::unique_ptr<Tokenizer> sp = tokenizer_from_serialized(lm_sample_tokenizer(), "test");
  const std::string text = "the earth and God said light was good";
  for (const Tokenizer* t : std::vector<const Tokenizer*>{&bytes(), sp.get()}) {
    for (size_t step : {0, 1, 2}) {
      bool stopped = false;
      std::vector<std::string> pieces;
      // "d s" spans pieces; "God" ends later than "d s" begins but "and" ends first
      EXPECT_EQ(stream_text(*t, t->encode(text), {"d s", "and", "God"}, step, &pieces, &stopped), "the earth ")
          << t->describe() << " step " << step;
      EXPECT_TRUE(stopped);
      EXPECT_EQ(stream_text(*t, t->encode(text), {"d said"}, step, nullptr, &stopped), "the earth and Go");
      EXPECT_TRUE(stopped);
      EXPECT_EQ(stream_text(*t, t->encode(text), {"goods"}, step, nullptr, &stopped), text);  // held, then released
      EXPECT_FALSE(stopped);
    }
  }
  // a stop string that begins inside a token: that token's text before it is kept
  EXPECT_EQ(stream_text(*sp, sp->encode(" said"), {"ai"}, 1), " s");
}

TEST(TextStream, EarliestStopStringWinsAndRawBytesAreKept) {
  // in one piece, "abcd" begins before "c": the earliest start is the cut (the longer match is not waited for)
  TextStream whole(bytes(), {"c", "abcd", ""}, -1);
  EXPECT_FALSE(whole.add(bytes().encode("xabcdy")));
  EXPECT_EQ(whole.bytes(), "x");
  TextStream streamed(bytes(), {"abcd", "c"}, -1);
  for (char ch : std::string("xabc")) streamed.add(bytes().encode(std::string(1, ch)));
  EXPECT_EQ(streamed.bytes(), "xab");  // "c" arrived first; "abcd" can no longer complete before it
  TextStream raw(bytes(), {"\n"}, -1);
  EXPECT_TRUE(raw.add(bytes().encode("a\xFF")));
  EXPECT_EQ(raw.bytes(), "a\xFF");  // as generated; take() would give U+FFFD
  EXPECT_EQ(raw.take(true), "a\xEF\xBF\xBD");
}

TEST(TextStream, EndOfTextTokenEndsTheTextWithoutItsBytes) {
  std::unique_ptr<Tokenizer> sp = tokenizer_from_serialized(lm_sample_tokenizer(), "test");
  for (const Tokenizer* t : std::vector<const Tokenizer*>{&bytes(), sp.get()}) {
    std::vector<int32_t> tokens = t->encode("the earth");
    std::vector<int32_t> with_eos = tokens;
    with_eos.insert(with_eos.begin() + 3, t->eos());  // "the" (byte-level) or more, then EOS, then the rest
    std::string before = t->decode(std::vector<int32_t>(tokens.begin(), tokens.begin() + 3));
    TextStream whole(*t, {}, t->eos());
    EXPECT_FALSE(whole.add(with_eos)) << t->describe();
    EXPECT_EQ(whole.bytes(), before);
    EXPECT_FALSE(whole.add(tokens));  // nothing is added after the end
    EXPECT_EQ(whole.take(true), before);
    TextStream one_by_one(*t, {"zzz"}, t->eos());
    size_t i = 0;
    while (i < with_eos.size() && one_by_one.add({with_eos[i]})) i++;
    EXPECT_EQ(i, 3u);
    EXPECT_EQ(one_by_one.bytes(), before);
    TextStream ignoring(*t, {}, -1);  // --ignore_eos: the token's bytes (byte-level: a NUL) are text
    EXPECT_TRUE(ignoring.add(with_eos));
    EXPECT_EQ(ignoring.bytes(), t->decode(with_eos));
  }
}
