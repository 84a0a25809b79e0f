// The text of completions (UTF-8 decoding and TextStream, see api.h) and the Prometheus text of GET /metrics.
#include <algorithm>
#include <cstdio>

#include "api.h"

namespace recur::server {

namespace {

// The length of the UTF-8 sequence a lead byte starts (0: not a lead byte) and the range of its second byte.
int sequence_length(unsigned char b, unsigned char& lo, unsigned char& hi) {
  lo = 0x80, hi = 0xBF;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) {
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;  // no surrogates
    return 3;
  }
  if (b >= 0xF0 && b <= 0xF4) {
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    return 4;
  }
  return 0;
}

}  // namespace

std::string Utf8Decoder::decode(std::string_view bytes, bool last) {
  std::string in = std::move(pending_), out;
  pending_.clear();
  in += bytes;
  const char* replacement = "\xEF\xBF\xBD";
  size_t i = 0;
  while (i < in.size()) {
    unsigned char b = (unsigned char)in[i], lo, hi;
    if (b < 0x80) {
      out += (char)b, i++;
      continue;
    }
    int len = sequence_length(b, lo, hi);
    if (len == 0) {
      out += replacement, i++;
      continue;
    }
    size_t j = i + 1;  // the bytes i..j-1 are a valid prefix of a sequence
    while (j < in.size() && (int)(j - i) < len) {
      unsigned char c = (unsigned char)in[j];
      if (j == i + 1 ? c < lo || c > hi : c < 0x80 || c > 0xBF) break;
      j++;
    }
    if ((int)(j - i) == len) {
      out.append(in, i, len);
    } else if (j == in.size() && !last) {
      pending_ = in.substr(i);  // may complete with the next tokens
    } else {
      out += replacement;  // one replacement for the maximal invalid subpart
    }
    i = j;
  }
  return out;
}

bool TextStream::add(const std::vector<int32_t>& tokens) {
  if (stopped_) return false;
  size_t old_size = bytes_.size(), cut = std::string::npos, cut_end = std::string::npos;
  bytes_ += tokenizer_.decode(tokens);
  // the stop string that ends first (then the longest): a match must end in the new bytes
  for (const std::string& s : stop_) {
    size_t at = bytes_.find(s, old_size >= s.size() - 1 ? old_size - (s.size() - 1) : 0);
    if (at != std::string::npos && (at + s.size() < cut_end || (at + s.size() == cut_end && at < cut)))
      cut = at, cut_end = at + s.size();
  }
  if (cut == std::string::npos) return true;
  bytes_.resize(cut);  // held back until now (held_back), so nothing of it was released
  stopped_ = true;
  return false;
}

size_t TextStream::held_back() const {
  size_t hold = 0;
  for (const std::string& s : stop_)
    for (size_t n = std::min(s.size() - 1, bytes_.size()); n > hold; n--)
      if (bytes_.compare(bytes_.size() - n, n, s, 0, n) == 0) hold = n;
  return hold;
}

std::string TextStream::take(bool last) {
  size_t end = last || stopped_ ? bytes_.size() : bytes_.size() - held_back();
  end = std::max(end, released_);
  std::string text = utf8_.decode(std::string_view(bytes_).substr(released_, end - released_), last);
  released_ = end;
  return text;
}

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
