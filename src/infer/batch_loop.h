// The continuous batching loop that serve() (a fixed request list) and Engine (an online queue) share: live
// sequences in up to max_batch slots, prompts prefilled in chunks, and each iteration one decode step for every
// sequence with a sampled token, or for MoR with depth-wise batching one pass of the shared block (see
// docs/design.md, "A decode step"). Every sequence has at most one sampled token in the model at a time.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "recur/decode.h"
#include "recur/rng.h"
#include "recur/sample.h"
#include "recur/serve.h"

namespace recur {

struct BatchSequence {
  uint64_t id = 0;  // the owner's handle (serve(): the request index)
  std::vector<int32_t> prompt;
  SampleOptions sampling;  // max_new_tokens ends the sequence
  Rng rng{0};
  KVCache cache;
  size_t prefilled = 0;  // prompt tokens already in the cache
  std::vector<int32_t> out;
  int32_t next = 0;        // the last sampled token: the one to run next
  bool finished = false;   // max_new_tokens reached, or the owner ended it (a stop string, a cancel)
  bool in_flight = false;  // depth-wise: its token is inside the recursion stack (or waiting to leave it)
  bool leaving = false;    // depth-wise with gathered exits: its token finished its recursion and waits to leave
  RecursionToken token;
};

class BatchLoop {
 public:
  struct Options {
    int max_batch = 16;
    bool depthwise = true;                          // MoR: depth-wise batching
    bool gather_exits = false;                      // depth-wise: finished tokens leave together (recur/serve.h)
    int prefill_chunk = 1 << 30;                    // prompt tokens prefilled per iteration, over all sequences
    std::function<void(BatchSequence&)> on_token;   // after each sampled token; may set finished
    std::function<void(BatchSequence&)> on_retire;  // a finished sequence, just before its slot and KV are freed
  };
  BatchLoop(const Model& model, Options options);

  bool has_room() const { return (int)live_.size() < options_.max_batch; }
  bool empty() const { return live_.empty(); }
  size_t size() const { return live_.size(); }
  void add(std::unique_ptr<BatchSequence> s);  // into a free slot; its prompt is prefilled by the next steps
  // The live sequence with this id, or null (an owner marks a cancelled one finished).
  BatchSequence* find(uint64_t id);
  // One iteration: a prefill chunk of waiting prompts, then a decode step (or one block pass); then every
  // finished sequence leaves (on_retire) and frees its slot and KV cache.
  void step();
  const ServeStats& stats() const { return stats_; }
  size_t kv_bytes() const;  // the live sequences' KV caches now

 private:
  void prefill();
  void decode_synchronous();
  void decode_depthwise();
  void enter_stack();
  void leave_stack(std::vector<RecursionToken*>& exited);
  void accept(BatchSequence& s, const float* logits_row);
  void retire_finished();
  bool decoding(const BatchSequence& s) const { return s.prefilled == s.prompt.size() && !s.finished; }

  const Model& model_;
  Options options_;
  Decoder decoder_;
  ServeStats stats_;
  std::vector<std::unique_ptr<BatchSequence>> live_;
  std::unordered_map<int, BatchSequence*> by_seq_;  // depth-wise: a stack token's seq -> its sequence
  int next_seq_ = 0;
  std::vector<float> logits_;
  std::vector<DecodeChunk> chunks_;  // the step's chunks and their sequences, reused: no allocation per step
  std::vector<BatchSequence*> seqs_;
  std::vector<RecursionToken*> leaving_;  // depth-wise with gathered exits: finished tokens waiting to leave
};

}  // namespace recur
