// The continuous batching loop shared by serve() and Engine (see batch_loop.h and docs/design.md, "A decode
// step"): chunked prefill, one decode step or depth-wise block pass per iteration, retirement at once.
#include "batch_loop.h"

#include <algorithm>
#include <chrono>

namespace recur {

BatchLoop::BatchLoop(const Model& model, Options options)
    : model_(model), options_(std::move(options)), decoder_(model) {}

void BatchLoop::add(std::unique_ptr<BatchSequence> s) {
  stats_.prompt_tokens += (int64_t)s->prompt.size();
  live_.push_back(std::move(s));
}

BatchSequence* BatchLoop::find(uint64_t id) {
  for (auto& s : live_)
    if (s->id == id) return s.get();
  return nullptr;
}

size_t BatchLoop::kv_bytes() const {
  size_t kv = 0;
  for (const auto& s : live_) kv += s->cache.bytes();
  return kv;
}

static double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void BatchLoop::step() {
  auto start = std::chrono::steady_clock::now();
  double sampling_before = stats_.sample_seconds;
  prefill();
  stats_.prefill_seconds += seconds_since(start) - (stats_.sample_seconds - sampling_before);  // sampling apart
  stats_.decode_iterations++;
  decoder_.time_stages(&stats_.decode_stages);
  if (model_.config().mor() && options_.depthwise)
    decode_depthwise();
  else
    decode_synchronous();
  decoder_.time_stages(nullptr);
  retire_finished();
}

void BatchLoop::accept(BatchSequence& s, const float* row) {
  auto start = std::chrono::steady_clock::now();
  s.next = sample_token(row, model_.config().vocab_size, s.sampling, s.rng);
  stats_.sample_seconds += seconds_since(start);
  s.out.push_back(s.next);
  stats_.generated_tokens++;
  if ((int)s.out.size() >= s.sampling.max_new_tokens) s.finished = true;
  if (options_.on_token) options_.on_token(s);
}

void BatchLoop::retire_finished() {
  stats_.peak_kv_bytes = std::max(stats_.peak_kv_bytes, kv_bytes());
  auto done = [&](std::unique_ptr<BatchSequence>& s) {
    if (!s->finished) return false;
    if (s->in_flight) by_seq_.erase(s->token.seq);  // cancelled inside the stack: its token just leaves
    if (s->leaving) leaving_.erase(std::remove(leaving_.begin(), leaving_.end(), &s->token), leaving_.end());
    if (options_.on_retire) options_.on_retire(*s);
    return true;
  };
  live_.erase(std::remove_if(live_.begin(), live_.end(), done), live_.end());
}

// Prompts still waiting for their cache, in admission order, up to prefill_chunk tokens in one forward; a
// sequence whose prompt is complete samples its first token.
void BatchLoop::prefill() {
  std::vector<DecodeChunk>& chunks = chunks_;
  std::vector<BatchSequence*>& seqs = seqs_;
  chunks.clear(), seqs.clear();
  int budget = options_.prefill_chunk;
  for (auto& s : live_) {
    if (s->finished || s->prefilled == s->prompt.size() || budget <= 0) continue;
    int n = std::min<int>(budget, (int)(s->prompt.size() - s->prefilled));
    chunks.push_back({&s->cache, s->prompt.data() + s->prefilled, n});
    seqs.push_back(s.get());
    budget -= n;
  }
  if (chunks.empty()) return;
  decoder_.forward(chunks, logits_, &stats_.block_passes, &stats_.block_rows);
  size_t row = 0, V = model_.config().vocab_size;
  for (size_t i = 0; i < seqs.size(); i++) {
    row += (size_t)chunks[i].n;
    seqs[i]->prefilled += (size_t)chunks[i].n;
    if (seqs[i]->prefilled == seqs[i]->prompt.size()) accept(*seqs[i], logits_.data() + (row - 1) * V);
  }
}

void BatchLoop::decode_synchronous() {
  std::vector<DecodeChunk>& chunks = chunks_;
  std::vector<BatchSequence*>& seqs = seqs_;
  chunks.clear(), seqs.clear();
  for (auto& s : live_)
    if (decoding(*s) && !s->out.empty()) chunks.push_back({&s->cache, &s->next, 1}), seqs.push_back(s.get());
  if (chunks.empty()) return;
  decoder_.forward(chunks, logits_, &stats_.block_passes, &stats_.block_rows);
  size_t V = model_.config().vocab_size;
  for (size_t i = 0; i < seqs.size(); i++) accept(*seqs[i], logits_.data() + i * V);
}

// New tokens enter the stack, one block pass runs every token at its own step, and the tokens that finished
// their recursion leave (with gather_exits: once enough of them have) and sample the next token of their sequence.
void BatchLoop::decode_depthwise() {
  enter_stack();
  std::vector<RecursionToken*> active, exited;
  for (auto& s : live_)
    if (s->in_flight && !s->leaving && !s->finished) active.push_back(&s->token);
  if (!active.empty()) {
    stats_.block_rows += decoder_.mor_advance(active, exited);
    stats_.block_passes++;
  }
  leave_stack(exited);
}

void BatchLoop::enter_stack() {
  std::vector<DecodeChunk> entering;
  std::vector<BatchSequence*> entering_seqs;
  for (auto& s : live_)
    if (decoding(*s) && !s->out.empty() && !s->in_flight)
      entering.push_back({&s->cache, &s->next, 1}), entering_seqs.push_back(s.get());
  if (entering.empty()) return;
  std::vector<RecursionToken> tokens;
  decoder_.mor_enter(entering, tokens);
  for (size_t i = 0; i < tokens.size(); i++) {
    BatchSequence* s = entering_seqs[i];
    s->token = std::move(tokens[i]);
    s->token.seq = next_seq_++;
    by_seq_[s->token.seq] = s;
    s->in_flight = true;
  }
}

// The tokens that just finished their recursion, and those waiting from earlier passes, run the coda and head
// and sample; with gather_exits they wait until half the decoding sequences are among them or the stack is empty.
void BatchLoop::leave_stack(std::vector<RecursionToken*>& exited) {
  std::vector<RecursionToken*>& leaving = leaving_;
  leaving.insert(leaving.end(), exited.begin(), exited.end());
  auto cancelled = [&](RecursionToken* t) { return by_seq_.at(t->seq)->finished; };  // retire_finished frees them
  leaving.erase(std::remove_if(leaving.begin(), leaving.end(), cancelled), leaving.end());
  if (leaving.empty()) return;
  if (options_.gather_exits) {
    int decoding_now = 0, in_stack = 0;
    for (auto& s : live_)
      if (decoding(*s)) decoding_now++, in_stack += s->in_flight;
    bool stack_empty = in_stack == (int)leaving.size();
    if (!stack_empty && 2 * (int)leaving.size() < decoding_now) {
      for (RecursionToken* t : exited) by_seq_[t->seq]->leaving = true;
      return;
    }
  }
  std::sort(leaving.begin(), leaving.end(),
            [](const RecursionToken* a, const RecursionToken* b) { return a->seq < b->seq; });
  decoder_.mor_leave(leaving, logits_);
  size_t V = model_.config().vocab_size;
  for (size_t i = 0; i < leaving.size(); i++) {
    auto it = by_seq_.find(leaving[i]->seq);
    BatchSequence& s = *it->second;
    by_seq_.erase(it);
    s.in_flight = s.leaving = false;
    accept(s, logits_.data() + i * V);
  }
  leaving.clear();
}

}  // namespace recur
