// MoR decoding in stages (see recur/decode.h): tokens enter the recursion stack after the unique prelude
// layers, advance one block pass at a time, each at its own recursion step with its own causal routing
// decision, and leave through the unique coda layers and the head. The routing rules themselves live in
// recur/expert_choice.h and recur/token_choice.h, shared with training. Every buffer is a Decoder member reused
// from call to call, so a MoR decode step allocates nothing once they have grown.
#include <algorithm>
#include <cstring>

#include "recur/decode.h"
#include "recur/error.h"
#include "recur/token_choice.h"

namespace recur {

using namespace kernels;

void Decoder::outer_layers_forward(const std::vector<int>& layers, size_t first_site, const TokenLayout& layout,
                                   const std::vector<CacheSlot>& slots) {
  std::vector<CacheSlot>& at_site = site_slots_;
  at_site.assign(slots.begin(), slots.end());
  y_.resize(x_.size());
  for (size_t i = 0; i < layers.size(); i++) {
    for (CacheSlot& s : at_site) s.site = first_site + i;
    cached_layer_forward(layers[i], layout, at_site, x_.data(), y_.data());
    std::swap(x_, y_);
  }
}

std::chrono::steady_clock::time_point Decoder::stage_start() const {
  return stage_times_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
}

void Decoder::count_stage(MorStageTimes::Stage stage, int rows, std::chrono::steady_clock::time_point start) {
  if (!stage_times_) return;
  stage_times_->calls[stage]++;
  stage_times_->rows[stage] += rows;
  stage_times_->seconds[stage] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void Decoder::mor_enter(const std::vector<DecodeChunk>& chunks, std::vector<RecursionToken>& tokens) {
  auto start = stage_start();
  const ModelConfig& c = model_.config();
  check(c.mor(), "decode: mor_enter needs a MoR model");
  const TokenLayout& layout = chunk_layout(chunks);
  const std::vector<int32_t>& ids = tokens_;
  int N = layout.n_rows, d = c.d_model, Nr = c.n_recursions;
  x_.resize((size_t)N * d);
  embedding_forward(x_.data(), ids.data(), model_.weights(model_.offsets().embed), N, d);
  std::vector<CacheSlot>& slots = mor_slots_;
  slots.clear();
  for (const DecodeChunk& chunk : chunks) slots.push_back({chunk.cache, 0});
  outer_layers_forward(model_.mor_stack().prelude, 0, layout, slots);
  tokens.resize(N);  // the tokens kept from an earlier call keep their buffers
  for (size_t s = 0; s < chunks.size(); s++)
    for (int i = layout.seq_start[s]; i < layout.seq_start[s + 1]; i++) {
      RecursionToken& t = tokens[i];
      t.cache = chunks[s].cache, t.seq = (int)s, t.pos = layout.pos[i];
      t.step = 0, t.gate = 0, t.routed = false;
      t.h.assign(x_.begin() + (size_t)i * d, x_.begin() + (size_t)(i + 1) * d);
      t.depth = Nr - 1;
      if (c.mor_routing == MorRouting::token) {
        t.h1 = t.h;
        t.probs.resize(Nr);
        double lse;
        t.depth = token_route(model_, t.h.data(), t.probs.data(), lse);
      }
    }
  count_stage(MorStageTimes::enter, N, start);
}

// Consecutive tokens of the same (seq, key) form one layout sequence: the layout and each group's first token,
// into buffers that keep their capacity.
static void group_tokens(const std::vector<RecursionToken*>& tokens, bool by_step, TokenLayout& layout,
                         std::vector<size_t>& first) {
  layout.seq_start.assign(1, 0);
  layout.pos.clear();
  first.clear();
  for (size_t i = 0; i < tokens.size(); i++) {
    bool same = i > 0 && tokens[i]->seq == tokens[i - 1]->seq && (!by_step || tokens[i]->step == tokens[i - 1]->step);
    if (!same) {
      if (i > 0) layout.seq_start.push_back((int32_t)i);
      first.push_back(i);
    }
    layout.pos.push_back(tokens[i]->pos);
  }
  if (!tokens.empty()) layout.seq_start.push_back((int32_t)tokens.size());
  layout.n_rows = (int)tokens.size();
}

void Decoder::expert_route_tokens(std::vector<RecursionToken*>& tokens, std::vector<RecursionToken*>& exited) {
  const ModelConfig& c = model_.config();
  int d = c.d_model;
  std::vector<RecursionToken*>& continuing = continuing_;
  continuing.clear();
  for (int r = 0; r < c.n_recursions; r++) {
    std::vector<RecursionToken*>& at_r = at_step_;
    at_r.clear();
    for (RecursionToken* t : tokens)
      if (t->step == r) at_r.push_back(t);
    if (at_r.empty()) continue;
    int n = (int)at_r.size();
    h_batch_.resize((size_t)n * d);
    for (int i = 0; i < n; i++) std::memcpy(h_batch_.data() + (size_t)i * d, at_r[i]->h.data(), d * sizeof(float));
    expert_route(model_, r, h_batch_.data(), n, scores_);
    const std::vector<float>& z_bce = scores_.bce_logits(c);
    for (int i = 0; i < n; i++) {
      at_r[i]->routed = true;
      at_r[i]->gate = expert_gate(c, scores_.z[i]);
      (expert_continues(c.capacity(r), z_bce[i], model_.mor_bias[r]) ? continuing : exited).push_back(at_r[i]);
    }
  }
  tokens.assign(continuing.begin(), continuing.end());
}

// The stream update after a block pass (recur/expert_choice.h, recur/token_choice.h); true if the token leaves.
static bool mix_after_pass(const ModelConfig& c, RecursionToken& t, const float* y) {
  int d = c.d_model;
  if (c.mor_routing == MorRouting::expert) {
    expert_mix(t.gate, y, t.h.data(), d);
    return t.step + 1 == c.n_recursions;
  }
  return token_mix(t.step, t.depth, t.probs.data(), t.h1.data(), y, t.h.data(), d);
}

int Decoder::mor_advance(std::vector<RecursionToken*>& active, std::vector<RecursionToken*>& exited) {
  auto start = stage_start();
  const ModelConfig& c = model_.config();
  const MorStack& stack = model_.mor_stack();
  int d = c.d_model;
  bool expert = c.mor_routing == MorRouting::expert;
  std::vector<RecursionToken*>&run = run_, &unrouted = unrouted_;
  run.clear(), unrouted.clear();
  for (RecursionToken* t : active) (expert && !t->routed ? unrouted : run).push_back(t);
  if (!unrouted.empty()) {
    expert_route_tokens(unrouted, exited);
    run.insert(run.end(), unrouted.begin(), unrouted.end());
  }
  // (seq, step, pos) is unique per token (a sequence's tokens have distinct positions), so std::sort, which
  // needs no buffer, orders as a stable sort would
  std::sort(run.begin(), run.end(), [](const RecursionToken* a, const RecursionToken* b) {
    return a->seq != b->seq ? a->seq < b->seq : a->step != b->step ? a->step < b->step : a->pos < b->pos;
  });
  int n = (int)run.size();
  std::vector<size_t>& first = first_;
  TokenLayout& layout = mor_layout_;
  group_tokens(run, true, layout, first);
  x_.resize((size_t)n * d);
  y_.resize((size_t)n * d);
  for (int i = 0; i < n; i++) std::memcpy(x_.data() + (size_t)i * d, run[i]->h.data(), d * sizeof(float));
  std::vector<CacheSlot>& slots = mor_slots_;
  slots.resize(first.size());
  for (int j = 0; j < stack.block_size && n > 0; j++) {
    for (size_t g = 0; g < first.size(); g++) {
      const RecursionToken* t = run[first[g]];
      bool share = c.mor_kv_sharing && t->step > 0;
      slots[g] = {t->cache, stack.recursion_site(t->step, j), share ? (int)stack.recursion_site(0, j) : -1};
    }
    cached_layer_forward(stack.block_begin + j, layout, slots, x_.data(), y_.data());
    std::swap(x_, y_);
  }
  std::vector<RecursionToken*>& still = still_;
  still.clear();
  for (int i = 0; i < n; i++) {
    RecursionToken* t = run[i];
    bool last = mix_after_pass(c, *t, x_.data() + (size_t)i * d);
    t->step++;
    t->routed = false;
    (last ? exited : still).push_back(t);
  }
  // route the next step at once, so that a token that stops leaves now instead of after the next pass
  if (expert) expert_route_tokens(still, exited);
  active.assign(still.begin(), still.end());
  count_stage(MorStageTimes::advance, n, start);
  return n;
}

void Decoder::mor_leave(const std::vector<RecursionToken*>& tokens, std::vector<float>& logits) {
  auto start = stage_start();
  const MorStack& stack = model_.mor_stack();
  int n = (int)tokens.size(), d = model_.config().d_model;
  x_.resize((size_t)n * d);
  for (int i = 0; i < n; i++) std::memcpy(x_.data() + (size_t)i * d, tokens[i]->h.data(), d * sizeof(float));
  if (!stack.coda.empty()) {
    std::vector<size_t>& first = first_;
    TokenLayout& layout = mor_layout_;
    group_tokens(tokens, false, layout, first);
    std::vector<CacheSlot>& slots = mor_slots_;
    slots.clear();
    for (size_t g : first) slots.push_back({tokens[g]->cache, 0});
    outer_layers_forward(stack.coda, stack.coda_site(0), layout, slots);
  }
  head(n, logits);
  count_stage(MorStageTimes::leave, n, start);
}

}  // namespace recur
