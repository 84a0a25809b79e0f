// A run folder's metrics.jsonl: opened for appending (a row cut short by a kill is dropped first), and read back
// strictly into the run's totals (bounded size and line length, every error naming the file, the line and the fix).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/json_read.h"
#include "recur/error.h"
#include "recur/train.h"

namespace recur {

namespace {

constexpr uint64_t kMaxMetricsBytes = uint64_t(4) << 30;  // about 10^7 rows of a few hundred bytes
constexpr uint64_t kMaxMetricsLine = uint64_t(1) << 20;   // a row holds one step's metrics, a few hundred bytes

// The value of a row's numeric key (0 when absent): finite and >= 0, else an Error naming `where`.
double row_amount(const nlohmann::json& row, const char* key, const std::string& where) {
  if (!row.contains(key)) return 0;
  const nlohmann::json& v = row[key];
  check(v.is_number() && v.get<double>() >= 0, where, ": \"", key, "\" is ", brief_json(v),
        ", not a number >= 0; the file is damaged: delete that line (or the folder, to train afresh)");
  return v.get<double>();
}

}  // namespace

// The length of metrics.jsonl up to its last newline; a row after it was cut short by a kill mid-write.
static uint64_t complete_rows_bytes(const std::string& path, uint64_t size) {
  uint64_t tail = std::min(size, kMaxMetricsLine);
  std::ifstream in(path, std::ios::binary);
  std::string bytes(tail, '\0');
  in.seekg((std::streamoff)(size - tail));
  check(in.read(bytes.data(), (std::streamsize)tail).good(), "train: cannot read ", path, "; check its permissions");
  size_t newline = bytes.rfind('\n');
  check(newline != std::string::npos || tail == size, path, ": its last ", tail,
        " bytes hold no line break; the file is damaged: delete it (or the folder, to train afresh)");
  return newline == std::string::npos ? 0 : size - tail + newline + 1;
}

void open_metrics_for_append(const std::string& out_dir, std::ofstream& metrics) {
  std::string path = out_dir + "/metrics.jsonl";
  if (std::filesystem::exists(path)) {
    uint64_t size = checked_file_size(path, kMaxMetricsBytes);
    uint64_t complete = size > 0 ? complete_rows_bytes(path, size) : 0;
    if (complete < size) std::filesystem::resize_file(path, complete);
  }
  metrics.open(path, std::ios::app);
  check(metrics.good(), "train: cannot write ", path, "; check that the --out folder is writable");
}

RunTotals read_run_totals(const std::string& out_dir) {
  std::string path = out_dir + "/metrics.jsonl";
  checked_file_size(path, kMaxMetricsBytes);  // a regular file of bounded size
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "cannot read ", path, "; is ", out_dir, " a training --out folder?");
  std::map<int64_t, std::pair<double, double>> per_step;  // step -> (seconds, flops)
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); line_no++) {
    if (line.empty()) continue;
    std::string where = path + " line " + std::to_string(line_no);
    nlohmann::json row = parse_json_strict(line, where, kMaxMetricsLine);
    check(row.is_object() && row.contains("step") && row["step"].is_number_integer() && row["step"].get<int64_t>() >= 0,
          where,
          ": not a metrics row (an object with an integer \"step\" >= 0); the file is damaged: delete that "
          "line (or the folder, to train afresh)");
    per_step[row["step"].get<int64_t>()] = {row_amount(row, "seconds", where), row_amount(row, "flops", where)};
  }
  RunTotals totals;
  totals.steps = (int64_t)per_step.size();
  for (const auto& [step, v] : per_step) totals.seconds += v.first, totals.flops += v.second;
  return totals;
}

}  // namespace recur
