// The online engine (recur/engine.h): seeded requests submitted from many threads while others run give exactly
// generate()'s tokens for each alone (plain and MoR, chunked prefill); stop sequences, cancels, a full queue and
// bad requests behave as documented, and every slot and KV byte is free afterwards.
#include <gtest/gtest.h>

#include <chrono>

#include <future>
#include <thread>

#include "recur/engine.h"
#include "recur/error.h"
#include "recur/rng.h"
#include "test_util.h"

using namespace recur;

namespace {

struct Outcome {
  std::vector<int32_t> streamed;
  EngineResult result;
};

// Submits and waits; the streamed tokens and the result come back together.
Outcome run_request(Engine& engine, EngineRequest request) {
  auto outcome = std::make_shared<Outcome>();
  std::promise<void> done;
  request.on_tokens = [outcome](const std::vector<int32_t>& t) {
    outcome->streamed.insert(outcome->streamed.end(), t.begin(), t.end());
    return true;
  };
  request.on_done = [outcome, &done](const EngineResult& r) {
    outcome->result = r;
    done.set_value();
  };
  uint64_t id = engine.submit(std::move(request));
  EXPECT_GT(id, 0u);
  if (id == 0) return {};
  done.get_future().wait();
  return *outcome;
}

EngineRequest some_request(int i, int V) {
  EngineRequest r;
  Rng rng(100 + i);
  r.prompt.resize(2 + (i * 5) % 11);
  for (auto& t : r.prompt) t = (int32_t)rng.uniform(V);
  r.sampling.max_new_tokens = 3 + (i * 7) % 9;
  r.sampling.temperature = i % 3 == 0 ? 0 : 0.9f;
  r.sampling.top_k = i % 2 ? 0 : 10;
  r.sampling.top_p = i % 4 == 1 ? 0.8f : 1;
  r.sampling.seed = 1000 + i;
  return r;
}

}  // namespace

TEST(Engine, ConcurrentSeededRequestsEqualGeneratingAlone) {
  for (const char* kind : {"plain", "expert", "token_kv"}) {
    Model m(tiny_decoder(kind, 24));
    m.init_weights(5);
    EngineOptions options;
    options.max_batch = 3, options.prefill_chunk = 4;        // few slots, prompts prefilled over several steps
    options.gather_exits = std::string(kind) == "token_kv";  // one MoR model leaves the stack with gathered exits
    Engine engine(m, options);
    const int n = 12;
    std::vector<Outcome> outcomes(n);
    std::vector<std::thread> clients;
    for (int i = 0; i < n; i++)
      clients.emplace_back([&, i] { outcomes[i] = run_request(engine, some_request(i, 40)); });
    for (auto& t : clients) t.join();
    for (int i = 0; i < n; i++) {
      EngineRequest r = some_request(i, 40);
      std::vector<int32_t> alone = generate(m, r.prompt, r.sampling);
      EXPECT_EQ(outcomes[i].result.tokens, alone) << kind << " request " << i;
      EXPECT_EQ(outcomes[i].streamed, alone) << kind << " request " << i;
      EXPECT_EQ(outcomes[i].result.reason, FinishReason::length);
    }
    // The engine publishes its metrics after the iteration that delivered the last result: wait for that one.
    EngineMetrics metrics = engine.metrics();
    for (int wait = 0; wait < 1000 && metrics.live_sequences > 0; wait++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      metrics = engine.metrics();
    }
    EXPECT_EQ(metrics.requests_finished, (uint64_t)n);
    EXPECT_EQ(metrics.live_sequences, 0u);
    EXPECT_EQ(metrics.kv_bytes, 0u);
    EXPECT_EQ(metrics.time_to_first_token.count, (uint64_t)n);
    if (m.config().mor()) {
      EXPECT_GT(metrics.block_rows, 0);
    }
  }
}

// on_tokens returning false (the server's stop strings) ends the sequence after that token, which is kept.
TEST(Engine, OnTokensFalseStopsAfterThatToken) {
  Model m(tiny_decoder("plain", 24));
  m.init_weights(5);
  Engine engine(m, EngineOptions{});
  EngineRequest r = some_request(0, 40);
  r.sampling.max_new_tokens = 8;
  std::vector<int32_t> alone = generate(m, r.prompt, r.sampling);
  std::promise<EngineResult> done;
  int calls = 0;
  r.on_tokens = [&](const std::vector<int32_t>&) { return ++calls < 3; };
  r.on_done = [&](const EngineResult& result) { done.set_value(result); };
  ASSERT_GT(engine.submit(r), 0u);
  EngineResult result = done.get_future().get();
  EXPECT_EQ(result.reason, FinishReason::stop);
  EXPECT_EQ(result.tokens, std::vector<int32_t>(alone.begin(), alone.begin() + 3));
}

TEST(Engine, CancelFreesTheSlotAndFullQueueRefuses) {
  Model m(tiny_decoder("expert", 40));
  m.init_weights(5);
  EngineOptions options;
  options.max_batch = 1, options.max_queue = 1;
  Engine engine(m, options);
  EngineRequest slow = some_request(1, 40);
  slow.sampling.max_new_tokens = 20;
  std::promise<EngineResult> first_done;
  std::promise<void> first_token, proceed;
  std::shared_future<void> proceeding = proceed.get_future().share();
  bool signalled = false;
  slow.on_tokens = [&](const std::vector<int32_t>&) {  // holds the engine until the queue is full and cancelled
    if (!signalled) signalled = true, first_token.set_value(), proceeding.wait();
    return true;
  };
  slow.on_done = [&](const EngineResult& r) { first_done.set_value(r); };
  uint64_t id = engine.submit(slow);
  ASSERT_GT(id, 0u);
  first_token.get_future().wait();
  EngineRequest queued = some_request(2, 40);
  std::promise<EngineResult> second_done;
  queued.on_done = [&](const EngineResult& r) { second_done.set_value(r); };
  uint64_t id2 = engine.submit(queued);
  EXPECT_EQ(engine.submit(some_request(3, 40)), 0u);  // one slot busy, one request queued: refused
  engine.cancel(id);
  proceed.set_value();
  EngineResult r = first_done.get_future().get();
  EXPECT_EQ(r.reason, FinishReason::cancelled);
  EXPECT_LT(r.tokens.size(), 20u);
  ASSERT_GT(id2, 0u);
  EXPECT_EQ(second_done.get_future().get().reason, FinishReason::length);
  engine.shutdown(false);
  EngineMetrics metrics = engine.metrics();
  EXPECT_EQ(metrics.kv_bytes, 0u);
  EXPECT_EQ(metrics.requests_cancelled, 1u);
  EXPECT_EQ(metrics.requests_rejected, 1u);
  EXPECT_EQ(engine.submit(some_request(4, 40)), 0u);  // shut down: refused
}

TEST(Engine, RejectsRequestsTheModelCannotRun) {
  Model m(tiny_decoder("plain", 24));
  Engine engine(m, EngineOptions{});
  EngineRequest r = some_request(0, 40);
  r.sampling.max_new_tokens = 30;  // past max_seq_len
  EXPECT_THROW(engine.submit(r), Error);
  r = some_request(0, 40);
  r.prompt.push_back(40);
  EXPECT_THROW(engine.submit(r), Error);
  r = some_request(0, 40);
  r.sampling.top_p = 0;
  EXPECT_THROW(engine.submit(r), Error);
  EXPECT_THROW(Engine(m, EngineOptions{0}), Error);
}
