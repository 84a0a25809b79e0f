// recur/decode.h: incremental decoding with KV caches over a read-only Model. A Decoder holds only scratch, so
// each thread (a server's engine, a sampler) has its own and all share one Model. New tokens of several
// sequences run through the model together (one matrix product per weight for all of them), each attending to
// the keys/values its own sequence cached at every layer application. A chunk of many tokens is a prefill; one
// token is a decode step. MoR models route causally (recur/expert_choice.h, recur/token_choice.h): each step's
// cache holds only the tokens that ran it (recursion-wise caching) unless the steps share the first one's.
#pragma once
#include <array>
#include <chrono>
#include <cstdint>
#include <vector>

#include "recur/expert_choice.h"
#include "recur/kernels.h"
#include "recur/layer.h"
#include "recur/model.h"

namespace recur {

// One sequence's decoding state: the post-RoPE keys and values of every position it has consumed, per layer
// application (MoR: per site of MorStack; empty for steps that share the first's), and how many tokens that is.
struct KVCache {
  std::vector<std::vector<float>> kv;     // per site: (rows, 2·kv_dim), each row [k | v]
  std::vector<std::vector<int32_t>> pos;  // per site: the position of each row (MoR: the tokens that ran it)
  int length = 0;                         // tokens consumed = the next token's position
  void clear();
  size_t bytes() const;
};

// New tokens of one sequence for a decode step (a prompt prefill, or one sampled token).
struct DecodeChunk {
  KVCache* cache;
  const int32_t* tokens;
  int n;
};

// A token inside the MoR recursion stack while decoding: its sequence, position, next step and stream state.
struct RecursionToken {
  KVCache* cache = nullptr;
  int seq = 0;  // orders tokens: rows of one sequence are kept together, by position
  int32_t pos = 0;
  int step = 0;                     // the recursion step it runs next
  int depth = 0;                    // token choice: its last step (expert choice decides step by step)
  float gate = 0;                   // expert choice: the gate of the step it is about to run
  bool routed = false;              // expert choice: the router of its next step has decided (it continues)
  std::vector<float> h, h1, probs;  // stream (d); token choice: stack input (d), router probabilities (N_r)
};

// Where one sequence of a cached layer call reads and writes K/V: its cache's site, or with shared_site >= 0
// only reading that site (recursive KV sharing).
struct CacheSlot {
  KVCache* cache;
  size_t site;
  int shared_site = -1;
};

// MoR decoding's time by stage (mor_enter, mor_advance, mor_leave): calls, the token rows they ran and seconds.
struct MorStageTimes {
  enum Stage { enter, advance, leave, n_stages };
  static constexpr const char* names[n_stages] = {"embed + prelude", "block pass", "coda + head"};
  int64_t calls[n_stages] = {}, rows[n_stages] = {};
  double seconds[n_stages] = {};
};

class Decoder {
 public:
  explicit Decoder(const Model& model) : model_(model) {}
  const Model& model() const { return model_; }

  // Runs each chunk's tokens at the positions after its cache, attending to the cache, and appends their
  // keys/values to it. logits (total new tokens, vocab) in chunk order. Equals TrainPass::forward over the
  // whole sequences; for MoR, the forward with causal routing. MoR: block_passes and block_rows, when given,
  // count the passes of the shared block and the rows they ran.
  void forward(const std::vector<DecodeChunk>& chunks, std::vector<float>& logits, int64_t* block_passes = nullptr,
               int64_t* block_rows = nullptr);

  // MoR decoding one stage at a time, for continuous depth-wise batching (recur/serve.h): tokens at different
  // recursion steps run the shared block in one batch. forward() is enter, advance until every token left the
  // stack, leave.
  //   mor_enter: embeddings and the unique prelude layers of the chunks' tokens (token choice: their depths).
  //   mor_advance: routes each active token at its own step, runs one block pass on those that continue, and
  //     moves the tokens that finished their last step into `exited`. Returns the rows it ran.
  //   mor_leave: the unique coda layers, final norm and head of tokens sorted by (seq, pos): logits (n, vocab).
  //   (mor_enter fills `tokens`, one per new token; the elements it keeps reuse their buffers.)
  void mor_enter(const std::vector<DecodeChunk>& chunks, std::vector<RecursionToken>& tokens);
  int mor_advance(std::vector<RecursionToken*>& active, std::vector<RecursionToken*>& exited);
  void mor_leave(const std::vector<RecursionToken*>& tokens, std::vector<float>& logits);
  // The MoR stages add their calls, rows and time to *times from now on (null: they are not timed).
  void time_stages(MorStageTimes* times) { stage_times_ = times; }

 private:
  // The clock when stages are timed (else no clock read); count_stage adds the time since `start` and one call of
  // `rows` rows to a stage, if stages are timed.
  std::chrono::steady_clock::time_point stage_start() const;
  void count_stage(MorStageTimes::Stage stage, int rows, std::chrono::steady_clock::time_point start);
  // Checks the chunks, lays out their tokens (into tokens_) at the positions after their caches (layout_) and
  // advances the caches. The buffers are reused, so a decode step allocates nothing once they have grown.
  const TokenLayout& chunk_layout(const std::vector<DecodeChunk>& chunks);
  // One layer (unique index u) over the new rows of each layout sequence s, attending to and extending the
  // cache site of slots[s]. x_in, x_out (n_rows, d).
  void cached_layer_forward(int u, const TokenLayout& layout, const std::vector<CacheSlot>& slots, const float* x_in,
                            float* x_out);
  // Unique layers `layers` at cache sites first_site.. for the rows of layout: x_ in, x_ out.
  void outer_layers_forward(const std::vector<int>& layers, size_t first_site, const TokenLayout& layout,
                            const std::vector<CacheSlot>& slots);
  // Expert choice: each token decides at its current step by the causal rule; the others exit.
  void expert_route_tokens(std::vector<RecursionToken*>& tokens, std::vector<RecursionToken*>& exited);
  void head(int N, std::vector<float>& logits);  // final norm + head of x_ (N,d)

  const Model& model_;
  LayerActivations acts_;
  ExpertScores scores_;
  std::vector<float> x_, y_, loop_input_, injected_, concat_, xn_, rstd_, h_batch_;
  TokenLayout layout_;
  std::vector<int32_t> tokens_;
  std::vector<CacheSlot> slots_;
  // cached_layer_forward's attention: one call per sequence slot, with its query and key ranges
  std::vector<kernels::AttentionCall> attention_calls_;
  std::vector<std::array<int32_t, 4>> attention_ranges_;  // q_start[2], k_start[2]
  // MoR stages' scratch (src/infer/mor_decode.cpp) and forward()'s tokens
  std::vector<CacheSlot> mor_slots_, site_slots_;
  std::vector<RecursionToken*> run_, unrouted_, at_step_, continuing_, still_, active_, exited_, in_order_;
  std::vector<size_t> first_;
  TokenLayout mor_layout_;
  std::vector<RecursionToken> mor_tokens_;
  MorStageTimes* stage_times_ = nullptr;
};

}  // namespace recur
