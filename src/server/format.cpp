// The Prometheus text of GET /metrics (see api.h).
#include <algorithm>
#include <cstdio>

#include "api.h"

namespace recur::server {

namespace {

std::string number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

void metric(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void sample(std::string& out, const std::string& name, double value) { out += name + " " + number(value) + "\n"; }

// A metric with one unlabelled sample.
void single(std::string& out, const char* name, const char* type, const char* help, double value) {
  metric(out, name, type, help);
  sample(out, name, value);
}

void histogram(std::string& out, const char* name, const char* help, const LatencyHistogram& h) {
  metric(out, name, "histogram", help);
  for (size_t i = 0; i < h.bounds.size(); i++)
    sample(out, std::string(name) + "_bucket{le=\"" + number(h.bounds[i]) + "\"}", (double)h.counts[i]);
  sample(out, std::string(name) + "_bucket{le=\"+Inf\"}", (double)h.count);
  sample(out, std::string(name) + "_sum", h.sum);
  sample(out, std::string(name) + "_count", (double)h.count);
}

}  // namespace

std::string prometheus_text(const EngineMetrics& m, const HttpCounters& http) {
  std::string out;
  single(out, "recur_http_requests_total", "counter", "HTTP requests received", (double)http.requests);
  single(out, "recur_http_errors_total", "counter", "HTTP requests answered with an error status", (double)http.errors);
  metric(out, "recur_requests_total", "counter", "completion requests by outcome");
  sample(out, "recur_requests_total{outcome=\"submitted\"}", (double)m.requests_submitted);
  sample(out, "recur_requests_total{outcome=\"finished\"}", (double)m.requests_finished);
  sample(out, "recur_requests_total{outcome=\"cancelled\"}", (double)m.requests_cancelled);
  sample(out, "recur_requests_total{outcome=\"rejected\"}", (double)m.requests_rejected);
  single(out, "recur_prompt_tokens_total", "counter", "prompt tokens admitted", (double)m.prompt_tokens);
  single(out, "recur_generated_tokens_total", "counter", "tokens generated", (double)m.generated_tokens);
  single(out, "recur_queue_depth", "gauge", "requests waiting for a batch slot", (double)m.queue_depth);
  single(out, "recur_live_sequences", "gauge", "sequences in batch slots", (double)m.live_sequences);
  single(out, "recur_batch_slots", "gauge", "batch slots (max_batch)", (double)m.max_batch);
  single(out, "recur_batch_occupancy", "gauge", "mean fraction of slots occupied per engine iteration",
         m.iterations > 0 ? (double)m.occupied_slots / ((double)m.iterations * m.max_batch) : 0.0);
  single(out, "recur_engine_iterations_total", "counter", "iterations of the batching loop", (double)m.iterations);
  single(out, "recur_mor_block_passes_total", "counter", "MoR: passes of the shared recursion block",
         (double)m.block_passes);
  single(out, "recur_mor_block_rows_total", "counter", "MoR: token rows run by those passes", (double)m.block_rows);
  single(out, "recur_mor_rows_per_pass", "gauge", "MoR: mean rows per pass of the shared block",
         m.block_passes > 0 ? (double)m.block_rows / (double)m.block_passes : 0.0);
  single(out, "recur_kv_cache_bytes", "gauge", "bytes of the live sequences' KV caches", (double)m.kv_bytes);
  histogram(out, "recur_time_to_first_token_seconds", "from submission to the first generated token",
            m.time_to_first_token);
  histogram(out, "recur_inter_token_latency_seconds", "between consecutive tokens of a sequence",
            m.inter_token_latency);
  return out;
}

}  // namespace recur::server
