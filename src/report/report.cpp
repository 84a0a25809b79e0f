// The experiment's report files: markdown table with depth fits and %Gap, CSV rows, JSON and an SVG plot, rendered
// from ExperimentReport (src/experiment computes every number shown here) and written into the experiment folder.
#include "recur/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "recur/safetensors.h"

namespace recur {

// "12.3" or, for a cell of several seeds, "12.3 ± 0.4" (percent).
static std::string percent(double value, double seed_stderr, int n_seeds) {
  char buf[48];
  if (n_seeds > 1)
    std::snprintf(buf, sizeof buf, "%.1f ± %.1f", 100 * value, 100 * seed_stderr);
  else
    std::snprintf(buf, sizeof buf, "%.1f", 100 * value);
  return buf;
}

// One row per model: size, cost, accuracy per difficulty, the mean with its standard error, seeds, test examples,
// time.
static void markdown_table(std::ostringstream& out, const std::vector<ModelResult>& results,
                           const std::vector<double>& majority) {
  out << "| model | depth | params | MFLOPs/token | ";
  for (int d : results[0].difficulties) out << "acc " << d << " | ";
  out << "mean | ± s.e. | seeds | test examples | train s |\n|---|---|---|---|";
  for (size_t i = 0; i < results[0].difficulties.size(); i++) out << "---|";
  out << "---|---|---|---|---|\n";
  char buf[64];
  int max_seeds = 1;
  for (const ModelResult& r : results) {
    max_seeds = std::max(max_seeds, r.n_seeds);
    std::snprintf(buf, sizeof buf, "%.2f", r.flops_per_token / 1e6);
    out << "| (" << r.spec.name() << ") | " << r.spec.depth() << " | " << r.params << " | " << buf << " | ";
    for (size_t d = 0; d < r.accuracy.size(); d++) {
      double se = d < r.accuracy_seed_stderr.size() ? r.accuracy_seed_stderr[d] : 0.0;
      out << percent(r.accuracy[d], se, r.n_seeds) << " | ";
    }
    std::snprintf(buf, sizeof buf, "%.1f | %.1f | %d | %d | %.0f |", 100 * r.mean_accuracy,
                  100 * mean_accuracy_stderr(r), r.n_seeds, r.eval_examples, r.train_seconds);
    out << buf << "\n";
  }
  if (majority.size() == results[0].difficulties.size()) {
    double mean = 0;
    out << "| majority answer | | | | ";
    for (double m : majority) out << percent(m, 0, 1) << " | ", mean += m / majority.size();
    out << percent(mean, 0, 1) << " | | | | |\n";
  }
  if (max_seeds > 1)
    out << "\nAccuracies are means over seeds ± their standard error over seeds; train s sums the seeds.\n";
  else
    out << "\nSingle seed: ± s.e. is the binomial error of the test sample alone, not the spread over seeds.\n";
}

static std::string model_list(const std::vector<std::string>& models) {
  std::string list;
  for (const std::string& m : models) list += (list.empty() ? "(" : ", (") + m + ")";
  return list.empty() ? "none" : list;
}

static void markdown_depth_fits(std::ostringstream& out, const std::vector<ModelResult>& results,
                                const DepthFitSpread& spread) {
  DepthFit lf = fit_depth(results, true), nf = fit_depth(results, false);
  out << "\nDepth scaling, accuracy = α·ln(D) + β (accuracy as a fraction) on the per-model means; the looped family "
         "is L > 1, the non-looped L = 1 (each (k⊗1) counts once, there):\n";
  char buf[96];
  auto fit_line = [&](const char* name, const DepthFit& f, const MeanStderr& over_seeds) {
    if (f.points == 0) {
      out << "- " << name << ": not enough depths to fit (models: " << model_list(f.models) << ")\n";
      return;
    }
    std::snprintf(buf, sizeof buf, "α = %.3f, β = %.3f", f.alpha, f.beta);
    out << "- " << name << " on " << model_list(f.models) << ": " << buf;
    if (over_seeds.n > 1) {
      std::snprintf(buf, sizeof buf, "; fitted per seed α = %.3f ± %.3f (%d seeds)", over_seeds.mean, over_seeds.se,
                    over_seeds.n);
      out << buf;
    }
    out << "\n";
  };
  fit_line("looped", lf, spread.alpha_looped);
  fit_line("non-looped", nf, spread.alpha_non_looped);
  if (lf.points && nf.points && std::fabs(nf.alpha) > 1e-9) {
    std::snprintf(buf, sizeof buf, "%.2f", lf.alpha / nf.alpha);
    out << "- α looped / α non-looped = " << buf;
    if (spread.alpha_ratio.n > 1) {
      std::snprintf(buf, sizeof buf, "; per seed %.2f ± %.2f (%d seeds)", spread.alpha_ratio.mean,
                    spread.alpha_ratio.se, spread.alpha_ratio.n);
      out << buf;
    }
    out << "\n";
  }
  if ((lf.points == 2 || nf.points == 2))
    out << "- a family of two models fits its line exactly: its α has no residual to test it\n";
}

static void markdown_gaps(std::ostringstream& out, const std::vector<ModelResult>& results,
                          const std::vector<ModelResult>& runs) {
  std::vector<LoopGap> gaps = loop_gaps(results, runs);
  if (!gaps.empty()) out << "\n%Gap = (looped − shallow) / (deep − shallow), on mean accuracy:\n";
  char buf[96];
  for (const LoopGap& g : gaps) {
    if (!g.defined) {
      std::snprintf(buf, sizeof buf, "%.1f", 100 * g.deep_minus_shallow);
      out << "- (" << g.looped << "): (" << g.deep << ") − (" << g.shallow << ") = " << buf
          << " points, within two standard errors: %Gap undefined\n";
      continue;
    }
    std::snprintf(buf, sizeof buf, "%.0f%%", 100 * g.looped_minus_shallow / g.deep_minus_shallow);
    out << "- (" << g.looped << ") between (" << g.shallow << ") and (" << g.deep << "): " << buf;
    if (g.per_seed.n > 1) {
      std::snprintf(buf, sizeof buf, "; per seed %.0f%% ± %.0f%% (%d seeds)", 100 * g.per_seed.mean,
                    100 * g.per_seed.se, g.per_seed.n);
      out << buf;
    }
    out << "\n";
  }
}

std::string report_markdown(const std::vector<ModelResult>& results, const std::vector<ModelResult>& runs,
                            const std::vector<double>& majority) {
  if (results.empty()) return "(no results)\n";
  const std::vector<ModelResult>& per_seed = runs.empty() ? results : runs;
  std::ostringstream out;
  markdown_table(out, results, majority);
  markdown_depth_fits(out, results, fit_depth_over_seeds(per_seed));
  markdown_gaps(out, results, per_seed);
  return out.str();
}

std::string report_csv(const std::vector<ModelResult>& results) {
  std::ostringstream out;
  if (results.empty()) return "";
  out << "model,prelude,k,L,coda,depth,params,flops_per_token";
  for (int d : results[0].difficulties) out << ",acc_" << d;
  for (int d : results[0].difficulties) out << ",acc_" << d << "_seed_stderr";
  out << ",acc_mean,acc_mean_stderr,seeds,eval_examples,train_seconds,steps\n";
  for (const ModelResult& r : results) {
    out << r.spec.name() << "," << r.spec.prelude << "," << r.spec.k << "," << r.spec.L << "," << r.spec.coda << ","
        << r.spec.depth() << "," << r.params << "," << r.flops_per_token;
    for (double a : r.accuracy) out << "," << a;
    for (size_t d = 0; d < r.accuracy.size(); d++)
      out << "," << (d < r.accuracy_seed_stderr.size() ? r.accuracy_seed_stderr[d] : 0.0);
    out << "," << r.mean_accuracy << "," << mean_accuracy_stderr(r) << "," << r.n_seeds << "," << r.eval_examples << ","
        << r.train_seconds << "," << r.steps << "\n";
  }
  return out.str();
}

std::string report_svg(const std::vector<ModelResult>& results, const std::string& title) {
  const double W = 640, H = 420, left = 60, right = 160, top = 40, bottom = 50;
  double max_depth = 2;
  for (const ModelResult& r : results) max_depth = std::max(max_depth, (double)r.spec.depth());
  double lx_max = std::log(max_depth * 1.2);
  auto X = [&](double depth) { return left + (W - left - right) * std::log(depth) / lx_max; };
  auto Y = [&](double acc) { return top + (H - top - bottom) * (1.0 - acc); };
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' "
    << "font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
  s << "<text x='" << left << "' y='22' font-size='14'>" << title << "</text>\n";
  s << "<line x1='" << left << "' y1='" << Y(0) << "' x2='" << W - right << "' y2='" << Y(0) << "' stroke='black'/>\n";
  s << "<line x1='" << left << "' y1='" << Y(0) << "' x2='" << left << "' y2='" << Y(1) << "' stroke='black'/>\n";
  for (int i = 0; i <= 4; i++) {
    double a = i / 4.0;
    s << "<text x='" << left - 8 << "' y='" << Y(a) + 4 << "' text-anchor='end'>" << (int)(100 * a) << "%</text>\n";
    s << "<line x1='" << left << "' y1='" << Y(a) << "' x2='" << W - right << "' y2='" << Y(a) << "' stroke='#ddd'/>\n";
  }
  for (int d = 1; d <= max_depth * 1.2; d *= 2)
    s << "<text x='" << X(d) << "' y='" << Y(0) + 18 << "' text-anchor='middle'>" << d << "</text>\n";
  s << "<text x='" << (left + W - right) / 2 << "' y='" << H - 12 << "' text-anchor='middle'>effective depth D (log)"
    << "</text>\n";
  const char* colors[2] = {"#d62728", "#1f77b4"};
  const char* labels[2] = {"looped (k⊗L)", "non-looped (kL⊗1)"};
  for (int family = 0; family < 2; family++) {
    DepthFit f = fit_depth(results, family == 0);
    if (f.points) {
      double d0 = 1, d1 = max_depth * 1.2;
      s << "<line x1='" << X(d0) << "' y1='" << Y(std::clamp(f.alpha * std::log(d0) + f.beta, 0.0, 1.0)) << "' x2='"
        << X(d1) << "' y2='" << Y(std::clamp(f.alpha * std::log(d1) + f.beta, 0.0, 1.0)) << "' stroke='"
        << colors[family] << "' stroke-dasharray='5,4'/>\n";
    }
    double ly = top + 20 + 20 * family;
    s << "<circle cx='" << W - right + 16 << "' cy='" << ly - 4 << "' r='5' fill='" << colors[family] << "'/>"
      << "<text x='" << W - right + 26 << "' y='" << ly << "'>" << labels[family];
    if (f.points) {
      char buf[32];
      std::snprintf(buf, sizeof buf, " α=%.3f", f.alpha);
      s << buf;
    }
    s << "</text>\n";
  }
  for (const ModelResult& r : results) {
    const char* color = r.spec.looped() ? colors[0] : colors[1];
    double se = mean_accuracy_stderr(r);
    if (se > 0)  // ± one standard error
      s << "<line x1='" << X(r.spec.depth()) << "' y1='" << Y(std::min(1.0, r.mean_accuracy + se)) << "' x2='"
        << X(r.spec.depth()) << "' y2='" << Y(std::max(0.0, r.mean_accuracy - se)) << "' stroke='" << color << "'/>\n";
    s << "<circle cx='" << X(r.spec.depth()) << "' cy='" << Y(r.mean_accuracy) << "' r='5' fill='" << color
      << "'/><text x='" << X(r.spec.depth()) + 7 << "' y='" << Y(r.mean_accuracy) - 6 << "' font-size='10'>("
      << r.spec.name() << ")</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

static nlohmann::json mean_stderr_json(const MeanStderr& m) { return {{"mean", m.mean}, {"se", m.se}, {"n", m.n}}; }

static nlohmann::json cell_json(const ModelResult& r) {
  return {{"model", r.spec.name()},
          {"depth", r.spec.depth()},
          {"params", r.params},
          {"flops_per_token", r.flops_per_token},
          {"difficulties", r.difficulties},
          {"accuracy", r.accuracy},
          {"accuracy_seed_stderr", r.accuracy_seed_stderr},
          {"mean_accuracy", r.mean_accuracy},
          {"mean_accuracy_stderr", mean_accuracy_stderr(r)},
          {"seeds", r.n_seeds},
          {"seed_mean_accuracy", r.seed_mean_accuracy},
          {"eval_examples", r.eval_examples},
          {"train_seconds", r.train_seconds}};
}

std::string report_json(const ExperimentReport& report) {
  nlohmann::json j = {{"models", nlohmann::json::array()}, {"runs", nlohmann::json::array()}};
  for (const ModelResult& r : report.results) j["models"].push_back(cell_json(r));
  for (const ModelResult& r : report.runs)
    j["runs"].push_back({{"model", r.spec.name()},
                         {"seed", r.seed},
                         {"mean_accuracy", r.mean_accuracy},
                         {"accuracy", r.accuracy},
                         {"eval_examples", r.eval_examples}});
  auto fit_json = [](const DepthFit& f, const MeanStderr& over_seeds) {
    return nlohmann::json{{"alpha", f.alpha},
                          {"beta", f.beta},
                          {"models", f.models},
                          {"fitted", f.points > 0},
                          {"alpha_over_seeds", mean_stderr_json(over_seeds)}};
  };
  j["fits"] = {{"looped", fit_json(report.looped, report.spread.alpha_looped)},
               {"non_looped", fit_json(report.non_looped, report.spread.alpha_non_looped)},
               {"alpha_ratio_over_seeds", mean_stderr_json(report.spread.alpha_ratio)}};
  j["majority_baseline"] = report.majority_baseline;
  j["gaps"] = nlohmann::json::array();
  for (const LoopGap& g : loop_gaps(report.results, report.runs))
    j["gaps"].push_back({{"looped", g.looped},
                         {"shallow", g.shallow},
                         {"deep", g.deep},
                         {"defined", g.defined},
                         {"gap", g.defined ? g.looped_minus_shallow / g.deep_minus_shallow : 0.0},
                         {"gap_over_seeds", mean_stderr_json(g.per_seed)}});
  return j.dump(2) + "\n";
}

std::string write_experiment_report(const ExperimentConfig& config, const ExperimentReport& report) {
  std::string markdown = report_markdown(report.results, report.runs, report.majority_baseline);
  write_text_atomic(config.out_dir + "/results.csv", report_csv(report.results));
  write_text_atomic(config.out_dir + "/results.json", report_json(report));
  write_text_atomic(config.out_dir + "/plot.svg", report_svg(report.results, "task " + config.task));
  write_text_atomic(config.out_dir + "/report.md", markdown);
  return markdown;
}

}  // namespace recur
