// The experiment's analysis (see recur/experiment.h): seeds aggregated into cells (mean ± standard error), the
// depth fits per family with the models each uses, α over seeds, standard errors and %Gap with its spread.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "recur/experiment.h"
#include "recur/tasks.h"

namespace recur {

MeanStderr mean_stderr(const std::vector<double>& values) {
  MeanStderr m;
  m.n = (int)values.size();
  if (m.n == 0) return m;
  for (double v : values) m.mean += v / m.n;
  if (m.n < 2) return m;
  double squares = 0;
  for (double v : values) squares += (v - m.mean) * (v - m.mean);
  m.se = std::sqrt(squares / (m.n - 1) / m.n);
  return m;
}

// The runs of one model (all of the same difficulties) as one cell.
static ModelResult aggregate_cell(const std::vector<const ModelResult*>& runs) {
  ModelResult cell = *runs[0];
  cell.n_seeds = (int)runs.size();
  cell.train_seconds = 0;
  cell.seed_mean_accuracy.clear();
  for (const ModelResult* r : runs) {
    cell.seed_mean_accuracy.push_back(r->mean_accuracy);
    cell.train_seconds += r->train_seconds;
  }
  MeanStderr mean = mean_stderr(cell.seed_mean_accuracy);
  cell.mean_accuracy = mean.mean;
  cell.mean_accuracy_seed_stderr = mean.se;
  cell.accuracy_seed_stderr.assign(cell.accuracy.size(), 0.0);
  for (size_t d = 0; d < cell.accuracy.size(); d++) {
    std::vector<double> values;
    for (const ModelResult* r : runs) values.push_back(r->accuracy.at(d));
    MeanStderr m = mean_stderr(values);
    cell.accuracy[d] = m.mean;
    cell.accuracy_seed_stderr[d] = m.se;
  }
  return cell;
}

std::vector<ModelResult> aggregate_seeds(const std::vector<ModelResult>& runs) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<const ModelResult*>> by_name;
  for (const ModelResult& r : runs) {
    if (!by_name.count(r.spec.name())) order.push_back(r.spec.name());
    by_name[r.spec.name()].push_back(&r);
  }
  std::vector<ModelResult> cells;
  for (const std::string& name : order) cells.push_back(aggregate_cell(by_name[name]));
  return cells;
}

DepthFit fit_depth(const std::vector<ModelResult>& results, bool looped_family) {
  std::vector<std::pair<double, double>> points;
  DepthFit fit;
  for (const ModelResult& r : results) {
    if (r.spec.looped() != looped_family) continue;
    points.push_back({std::log((double)r.spec.depth()), r.mean_accuracy});
    fit.models.push_back(r.spec.name());
  }
  fit.points = (int)points.size();
  double n = points.size(), sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (auto [x, y] : points) sx += x, sy += y, sxx += x * x, sxy += x * y;
  double denom = n * sxx - sx * sx;
  if (n >= 2 && denom > 1e-12) {
    fit.alpha = (n * sxy - sx * sy) / denom;
    fit.beta = (sy - fit.alpha * sx) / n;
  } else {
    fit.points = 0;
  }
  return fit;
}

DepthFitSpread fit_depth_over_seeds(const std::vector<ModelResult>& runs) {
  std::set<uint64_t> seeds;
  for (const ModelResult& r : runs) seeds.insert(r.seed);
  std::vector<double> looped, non_looped, ratio;
  for (uint64_t seed : seeds) {
    std::vector<ModelResult> of_seed;
    for (const ModelResult& r : runs)
      if (r.seed == seed) of_seed.push_back(r);
    DepthFit lf = fit_depth(of_seed, true), nf = fit_depth(of_seed, false);
    if (lf.points) looped.push_back(lf.alpha);
    if (nf.points) non_looped.push_back(nf.alpha);
    if (lf.points && nf.points && std::fabs(nf.alpha) > 1e-9) ratio.push_back(lf.alpha / nf.alpha);
  }
  return {mean_stderr(looped), mean_stderr(non_looped), mean_stderr(ratio)};
}

double mean_accuracy_stderr(const ModelResult& r) {
  if (r.n_seeds > 1) return r.mean_accuracy_seed_stderr;
  if (r.eval_examples <= 0 || r.accuracy.empty()) return 0;
  double variance = 0;
  for (double p : r.accuracy) variance += p * (1 - p) / r.eval_examples;
  return std::sqrt(variance) / (double)r.accuracy.size();
}

// Each seed's %Gap of `gap`: the seeds with a run of all three models whose deep and shallow differ.
static MeanStderr gap_over_seeds(const LoopGap& gap, const std::vector<ModelResult>& runs) {
  std::map<uint64_t, std::map<std::string, double>> by_seed;  // seed -> model name -> mean accuracy
  for (const ModelResult& r : runs) by_seed[r.seed][r.spec.name()] = r.mean_accuracy;
  std::vector<double> gaps;
  for (auto& [seed, acc] : by_seed) {
    if (!acc.count(gap.looped) || !acc.count(gap.shallow) || !acc.count(gap.deep)) continue;
    double span = acc[gap.deep] - acc[gap.shallow];
    if (std::fabs(span) > 1e-9) gaps.push_back((acc[gap.looped] - acc[gap.shallow]) / span);
  }
  return mean_stderr(gaps);
}

std::vector<LoopGap> loop_gaps(const std::vector<ModelResult>& results, const std::vector<ModelResult>& runs) {
  std::map<std::string, const ModelResult*> by_name;
  for (const ModelResult& r : results) by_name[r.spec.name()] = &r;
  std::vector<LoopGap> gaps;
  for (const ModelResult& r : results) {
    if (!r.spec.looped() || r.spec.prelude || r.spec.coda) continue;
    auto shallow = by_name.find(std::to_string(r.spec.k) + "x1");
    auto deep = by_name.find(std::to_string(r.spec.k * r.spec.L) + "x1");
    if (shallow == by_name.end() || deep == by_name.end()) continue;
    LoopGap gap;
    gap.looped = r.spec.name();
    gap.shallow = shallow->first;
    gap.deep = deep->first;
    gap.looped_minus_shallow = r.mean_accuracy - shallow->second->mean_accuracy;
    gap.deep_minus_shallow = deep->second->mean_accuracy - shallow->second->mean_accuracy;
    // Two standard errors of the difference (0 when the example counts are unknown): a smaller gap between deep
    // and shallow is noise, and a ratio over it would mean nothing.
    double noise = 2 * std::hypot(mean_accuracy_stderr(*deep->second), mean_accuracy_stderr(*shallow->second));
    gap.defined = std::fabs(gap.deep_minus_shallow) >= std::max(1e-9, noise);
    gap.per_seed = gap_over_seeds(gap, runs);
    gaps.push_back(gap);
  }
  return gaps;
}

std::vector<double> majority_baseline(const tasks::Task& task, int examples) {
  std::vector<double> baseline;
  for (int difficulty : task.difficulties(tasks::Split::test)) {
    std::map<std::vector<int32_t>, int> counts;  // answer tokens -> examples
    int most = 0;
    for (int i = 0; i < examples; i++) {
      tasks::Example e = task.generate(tasks::Split::test, (uint64_t)i, difficulty);
      most = std::max(most, ++counts[std::vector<int32_t>(e.tokens.begin() + e.answer_begin, e.tokens.end())]);
    }
    baseline.push_back(examples > 0 ? (double)most / examples : 0.0);
  }
  return baseline;
}

}  // namespace recur
