// Serving: continuous (and, for MoR, depth-wise, with or without gathered exits) batching returns for every request
// what generating it alone returns (greedy), with requests joining as slots free up; a stop token cuts a request
// short; bad requests are rejected by index.
#include <gtest/gtest.h>

#include <algorithm>

#include "recur/error.h"
#include "recur/rng.h"
#include "recur/serve.h"
#include "test_util.h"

using namespace recur;

namespace {

std::vector<ServeRequest> some_requests(int V) {
  std::vector<ServeRequest> requests;
  Rng rng(11);
  for (int i = 0; i < 5; i++) {
    ServeRequest r;
    r.prompt.resize(3 + i);
    for (auto& t : r.prompt) t = (int32_t)rng.uniform(V);
    r.max_new_tokens = 4 + (i * 3) % 7;
    requests.push_back(r);
  }
  return requests;
}

}  // namespace

TEST(Serve, BatchedResultsEqualGeneratingAlone) {
  for (const char* kind : {"plain", "expert", "token_kv"}) {
    Model m(tiny_decoder(kind, 24));
    m.init_weights(21);
    for (float& w : m.params) w *= 4;  // clear argmax margins: batching must not flip greedy choices
    std::vector<ServeRequest> requests = some_requests(40);
    ServeOptions options;  // max_batch below the request count: the others join as sequences finish
    options.sampling.temperature = 0;
    std::vector<std::vector<int32_t>> alone;
    int64_t total = 0;
    for (const ServeRequest& r : requests) {
      SampleOptions o = options.sampling;
      o.max_new_tokens = r.max_new_tokens;
      alone.push_back(generate(m, r.prompt, o));
      total += r.max_new_tokens;
    }
    struct Mode {
      bool depthwise, gather_exits;
      int max_batch;
    };
    for (Mode mode : {Mode{false, false, 2}, Mode{true, false, 2}, Mode{true, false, 4}, Mode{true, true, 4}}) {
      options.depthwise = mode.depthwise, options.gather_exits = mode.gather_exits;
      options.max_batch = mode.max_batch;
      std::string which = std::string(kind) + " depthwise " + std::to_string(mode.depthwise) + " gather " +
                          std::to_string(mode.gather_exits) + " max_batch " + std::to_string(mode.max_batch);
      ServeStats stats;
      std::vector<std::vector<int32_t>> served = serve(m, requests, options, &stats);
      EXPECT_EQ(served, alone) << which;
      EXPECT_EQ(stats.generated_tokens, total);
      EXPECT_GT(stats.peak_kv_bytes, 0u);
      if (m.config().mor()) {
        EXPECT_GT(stats.block_passes, 0);
        EXPECT_GT(stats.block_rows, 0);
        for (int stage = 0; stage < MorStageTimes::n_stages; stage++)
          EXPECT_GT(stats.decode_stages.calls[stage], 0) << which << " stage " << stage;
        // every generated token but each request's first (sampled after its prefill) left the stack once
        EXPECT_EQ(stats.decode_stages.rows[MorStageTimes::leave], total - (int64_t)requests.size()) << which;
      }
    }
  }
}

// A stop token ends its request where generating alone first emits it (the token left out), and the freed slot goes
// to the next request; requests that never emit it run to max_new_tokens.
TEST(Serve, StopTokenEndsItsRequest) {
  for (const char* kind : {"plain", "expert"}) {
    Model m(tiny_decoder(kind, 24));
    m.init_weights(21);
    for (float& w : m.params) w *= 4;
    std::vector<ServeRequest> requests = some_requests(40);
    ServeOptions options;
    options.sampling.temperature = 0, options.max_batch = 2;
    std::vector<std::vector<int32_t>> alone;
    for (const ServeRequest& r : requests) {
      SampleOptions o = options.sampling;
      o.max_new_tokens = r.max_new_tokens;
      alone.push_back(generate(m, r.prompt, o));
    }
    options.stop_token = alone[1][1];  // the second token of request 1: at least one request stops early
    int stopped = 0;
    for (std::vector<int32_t>& tokens : alone) {
      auto stop = std::find(tokens.begin(), tokens.end(), options.stop_token);
      stopped += stop != tokens.end();
      tokens.erase(stop, tokens.end());
    }
    ASSERT_GE(stopped, 1);
    for (bool depthwise : {false, true}) {
      options.depthwise = depthwise;
      EXPECT_EQ(serve(m, requests, options), alone) << kind << " depthwise " << depthwise;
    }
  }
}

TEST(Serve, RejectsBadRequests) {
  Model m(tiny_decoder("plain", 24));
  std::vector<ServeRequest> requests = some_requests(40);
  ServeOptions options;
  requests[2].max_new_tokens = 30;  // past max_seq_len
  try {
    serve(m, requests, options);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("request 2"), std::string::npos) << e.what();
  }
  requests[2].max_new_tokens = 3;
  requests[4].prompt.clear();
  EXPECT_THROW(serve(m, requests, options), Error);
  requests[4].prompt = {1, 77};
  EXPECT_THROW(serve(m, requests, options), Error);
  options.max_batch = 0;
  EXPECT_THROW(serve(m, some_requests(40), options), Error);
}
