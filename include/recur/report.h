// recur/report.h: the experiment's report files, rendered from its structured results: the paper-style markdown
// table with the depth fits and %Gap (report.md), one CSV row per model (results.csv) and an accuracy-vs-depth
// plot (plot.svg), and all of it as JSON (results.json). Kept apart from the engine: rendering is presentation, the
// numbers come from experiment.h.
#pragma once
#include <string>
#include <vector>

#include "recur/experiment.h"

namespace recur {

// The table, the fits and %Gap = (looped − shallow)/(deep − shallow) for each (k⊗L) whose (k⊗1) and (kL⊗1) ran.
// `results` are the per-model cells, `runs` the per-seed runs behind them (empty: each cell is one run).
// `majority` (per difficulty, may be empty) adds the majority-class baseline as a row.
std::string report_markdown(const std::vector<ModelResult>& results, const std::vector<ModelResult>& runs = {},
                            const std::vector<double>& majority = {});
std::string report_csv(const std::vector<ModelResult>& results);
// Accuracy against effective depth (log axis) for both families, with their fitted lines.
std::string report_svg(const std::vector<ModelResult>& results, const std::string& title);

// Every number of the report as JSON: per-model cells with their seed spread, the runs, fits (with the models
// each uses and α over seeds) and %Gap.
std::string report_json(const ExperimentReport& report);

// Writes results.csv, results.json, plot.svg and report.md into config.out_dir. Returns the markdown.
std::string write_experiment_report(const ExperimentConfig& config, const ExperimentReport& report);

}  // namespace recur
