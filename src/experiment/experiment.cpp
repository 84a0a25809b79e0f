// The looped-vs-deep grid experiment: trains each model of the grid on a task (resumably), evaluates it, and
// writes results.csv, report.md and plot.svg into the experiment folder.
#include "recur/experiment.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "recur/checkpoint.h"
#include "recur/safetensors.h"
#include "recur/error.h"
#include "recur/task_train.h"
#include "recur/tasks.h"

namespace recur {

namespace fs = std::filesystem;

LoopSpec LoopSpec::parse(const std::string& text) {
  LoopSpec s;
  std::string body = text;
  auto fail = [&] {
    throw Error("experiment: cannot read model \"" + text + "\"; write kxL (e.g. 2x3, 6x1) or p+kxL+c (e.g. 1+2x2+1)");
  };
  size_t plus1 = body.find('+');
  if (plus1 != std::string::npos) {
    size_t plus2 = body.find('+', plus1 + 1);
    if (plus2 == std::string::npos) fail();
    try {
      s.prelude = std::stoi(body.substr(0, plus1));
      s.coda = std::stoi(body.substr(plus2 + 1));
    } catch (...) {
      fail();
    }
    body = body.substr(plus1 + 1, plus2 - plus1 - 1);
  }
  size_t x = body.find('x');
  if (x == std::string::npos) fail();
  try {
    size_t used = 0;
    s.k = std::stoi(body.substr(0, x), &used);
    if (used != x) fail();
    s.L = std::stoi(body.substr(x + 1), &used);
    if (used != body.size() - x - 1) fail();
  } catch (const Error&) {
    throw;
  } catch (...) {
    fail();
  }
  if (s.k < 1 || s.L < 1 || s.prelude < 0 || s.coda < 0) fail();
  return s;
}

std::string LoopSpec::name() const {
  std::string core = std::to_string(k) + "x" + std::to_string(L);
  if (prelude == 0 && coda == 0) return core;
  return std::to_string(prelude) + "+" + core + "+" + std::to_string(coda);
}

static ModelConfig model_for(const ExperimentConfig& e, const LoopSpec& s, const tasks::Task& task) {
  ModelConfig c = e.base;
  c.vocab_size = task.vocab_size();
  c.max_seq_len = task.max_length();
  c.sharing = Sharing::none;
  c.prelude = s.prelude;
  c.loop_block = s.k;
  c.loop_count = s.L;
  c.coda = s.coda;
  c.n_layers = s.depth();
  c.validate();
  return c;
}

static nlohmann::json result_to_json(const ModelResult& r) {
  return {{"model", r.spec.name()}, {"params", r.params},         {"flops_per_token", r.flops_per_token},
          {"difficulties", r.difficulties}, {"accuracy", r.accuracy}, {"eval_examples", r.eval_examples},
          {"mean_accuracy", r.mean_accuracy}, {"train_seconds", r.train_seconds}, {"steps", r.steps}};
}

static ModelResult result_from_json(const nlohmann::json& j) {
  ModelResult r;
  r.spec = LoopSpec::parse(j.at("model").get<std::string>());
  r.params = j.at("params").get<size_t>();
  r.flops_per_token = j.at("flops_per_token").get<double>();
  r.difficulties = j.at("difficulties").get<std::vector<int>>();
  r.accuracy = j.at("accuracy").get<std::vector<double>>();
  r.eval_examples = j.value("eval_examples", 0);  // results written before it was recorded have none
  r.mean_accuracy = j.at("mean_accuracy").get<double>();
  r.train_seconds = j.at("train_seconds").get<double>();
  r.steps = j.at("steps").get<int64_t>();
  return r;
}

DepthFit fit_depth(const std::vector<ModelResult>& results, bool looped_family) {
  std::vector<std::pair<double, double>> points;
  for (const ModelResult& r : results) {
    bool member = r.spec.looped();
    if (!looped_family) member = !r.spec.looped();
    // (k⊗1) is the first member of the looped family of its k
    if (looped_family && !r.spec.looped())
      for (const ModelResult& o : results)
        if (o.spec.looped() && o.spec.k == r.spec.k && o.spec.prelude == r.spec.prelude && o.spec.coda == r.spec.coda)
          member = true;
    if (member) points.push_back({std::log((double)r.spec.depth()), r.mean_accuracy});
  }
  DepthFit fit;
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

double mean_accuracy_stderr(const ModelResult& r) {
  if (r.eval_examples <= 0 || r.accuracy.empty()) return 0;
  double variance = 0;
  for (double p : r.accuracy) variance += p * (1 - p) / r.eval_examples;
  return std::sqrt(variance) / (double)r.accuracy.size();
}

std::string report_markdown(const ExperimentConfig& e, const std::vector<ModelResult>& results) {
  std::ostringstream out;
  if (results.empty()) return "(no results)\n";
  out << "| model | depth | params | MFLOPs/token | ";
  for (int d : results[0].difficulties) out << "acc " << d << " | ";
  out << "mean | ± s.e. | test examples | train s |\n|---|---|---|---|";
  for (size_t i = 0; i < results[0].difficulties.size(); i++) out << "---|";
  out << "---|---|---|---|\n";
  char buf[64];
  for (const ModelResult& r : results) {
    std::snprintf(buf, sizeof buf, "%.2f", r.flops_per_token / 1e6);
    out << "| (" << r.spec.name() << ") | " << r.spec.depth() << " | " << r.params << " | " << buf << " | ";
    for (double a : r.accuracy) {
      std::snprintf(buf, sizeof buf, "%.1f", 100 * a);
      out << buf << " | ";
    }
    std::snprintf(buf, sizeof buf, "%.1f | %.1f | %d | %.0f |", 100 * r.mean_accuracy, 100 * mean_accuracy_stderr(r),
                  r.eval_examples, r.train_seconds);
    out << buf << "\n";
  }
  DepthFit lf = fit_depth(results, true), nf = fit_depth(results, false);
  out << "\nDepth scaling, accuracy = α·ln(D) + β (accuracy as a fraction):\n";
  auto fit_line = [&](const char* name, const DepthFit& f) {
    if (f.points == 0) out << "- " << name << ": not enough depths to fit\n";
    else {
      std::snprintf(buf, sizeof buf, "α = %.3f, β = %.3f", f.alpha, f.beta);
      out << "- " << name << " (" << f.points << " models): " << buf << "\n";
    }
  };
  fit_line("looped", lf);
  fit_line("non-looped", nf);
  if (lf.points && nf.points && std::fabs(nf.alpha) > 1e-9) {
    std::snprintf(buf, sizeof buf, "%.2f", lf.alpha / nf.alpha);
    out << "- α looped / α non-looped = " << buf << "\n";
  }
  std::map<std::string, const ModelResult*> by_name;
  for (const ModelResult& r : results) by_name[r.spec.name()] = &r;
  bool any = false;
  for (const ModelResult& r : results) {
    if (!r.spec.looped() || r.spec.prelude || r.spec.coda) continue;
    auto shallow = by_name.find(std::to_string(r.spec.k) + "x1");
    auto deep = by_name.find(std::to_string(r.spec.k * r.spec.L) + "x1");
    if (shallow == by_name.end() || deep == by_name.end()) continue;
    if (!any) out << "\n%Gap = (looped − shallow) / (deep − shallow), on mean accuracy:\n";
    any = true;
    double gap_den = deep->second->mean_accuracy - shallow->second->mean_accuracy;
    // Two standard errors of the difference (0 when the example counts are unknown): a smaller gap between deep
    // and shallow is noise, and a ratio over it would mean nothing.
    double noise = 2 * std::hypot(mean_accuracy_stderr(*deep->second), mean_accuracy_stderr(*shallow->second));
    if (std::fabs(gap_den) < std::max(1e-9, noise)) {
      std::snprintf(buf, sizeof buf, "%.1f", 100 * gap_den);
      out << "- (" << r.spec.name() << "): (" << deep->first << ") − (" << shallow->first << ") = " << buf
          << " points, within two standard errors: %Gap undefined\n";
      continue;
    }
    std::snprintf(buf, sizeof buf, "%.0f%%", 100 * (r.mean_accuracy - shallow->second->mean_accuracy) / gap_den);
    out << "- (" << r.spec.name() << ") between (" << shallow->first << ") and (" << deep->first << "): " << buf << "\n";
  }
  (void)e;
  return out.str();
}

std::string report_csv(const std::vector<ModelResult>& results) {
  std::ostringstream out;
  if (results.empty()) return "";
  out << "model,prelude,k,L,coda,depth,params,flops_per_token";
  for (int d : results[0].difficulties) out << ",acc_" << d;
  out << ",acc_mean,acc_mean_stderr,eval_examples,train_seconds,steps\n";
  for (const ModelResult& r : results) {
    out << r.spec.name() << "," << r.spec.prelude << "," << r.spec.k << "," << r.spec.L << "," << r.spec.coda << ","
        << r.spec.depth() << "," << r.params << "," << r.flops_per_token;
    for (double a : r.accuracy) out << "," << a;
    out << "," << r.mean_accuracy << "," << mean_accuracy_stderr(r) << "," << r.eval_examples << "," << r.train_seconds
        << "," << r.steps << "\n";
  }
  return out.str();
}

// Accuracy against effective depth (log axis) for both families, with their fitted lines.
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
    s << "<line x1='" << left << "' y1='" << Y(a) << "' x2='" << W - right << "' y2='" << Y(a)
      << "' stroke='#ddd'/>\n";
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
    s << "<circle cx='" << X(r.spec.depth()) << "' cy='" << Y(r.mean_accuracy) << "' r='5' fill='" << color
      << "'/><text x='" << X(r.spec.depth()) + 7 << "' y='" << Y(r.mean_accuracy) - 6 << "' font-size='10'>("
      << r.spec.name() << ")</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

// The final test evaluation: accuracy per test difficulty on e.eval_examples examples each.
static void evaluate_final(const Model& model, const tasks::Task& task, const ExperimentConfig& e, ModelResult* r) {
  TrainPass pass(model);
  r->difficulties.clear();
  r->accuracy.clear();
  for (const DifficultyAccuracy& a : evaluate_task(pass, task, tasks::Split::test, e.eval_examples, e.eval_batch)) {
    r->difficulties.push_back(a.difficulty);
    r->accuracy.push_back(a.accuracy());
  }
  r->mean_accuracy = 0;
  for (double a : r->accuracy) r->mean_accuracy += a / r->accuracy.size();
  r->eval_examples = e.eval_examples;
}

static void write_result(const std::string& path, const ModelResult& r) {
  std::string text = result_to_json(r).dump(2) + "\n";
  write_file_atomic(path, text.data(), text.size());
}

ExperimentReport run_experiment(const ExperimentConfig& e, bool quiet) {
  check(!e.models.empty(), "experiment: no models given; pass --models, e.g. 1x1,2x1,6x1,2x3");
  e.train.validate();
  auto task = tasks::make_task(e.task, e.task_options, e.task_seed);
  TrainConfig train = e.train;
  train.seq_len = task->max_length();  // rows are padded per batch; this only bounds them
  fs::create_directories(e.out_dir);
  ExperimentReport report;
  int index = 0;
  for (const LoopSpec& spec : e.models) {
    index++;
    std::string dir = e.out_dir + "/models/" + spec.name();
    std::string result_path = dir + "/result.json";
    if (fs::exists(result_path)) {
      std::vector<uint8_t> bytes = read_file_bytes(result_path);
      ModelResult r = result_from_json(nlohmann::json::parse(bytes.begin(), bytes.end()));
      const char* how = "done earlier";
      if (e.reevaluate && r.eval_examples != e.eval_examples) {
        Model model = checkpoint_load_model(dir);  // the last checkpoint is the trained model
        evaluate_final(model, *task, e, &r);
        write_result(result_path, r);
        how = "re-evaluated";
      }
      report.results.push_back(r);
      if (!quiet) std::printf("[%d/%zu] (%s) %s: mean accuracy %.1f%% on %d test examples per difficulty\n", index,
                              e.models.size(), spec.name().c_str(), how, 100 * r.mean_accuracy, r.eval_examples);
      continue;
    }
    Model model(model_for(e, spec, *task));
    model.init_weights(train.seed);
    ModelResult r;
    r.spec = spec;
    r.params = model.n_params();
    r.flops_per_token = model.forward_flops_per_token(task->max_length());
    if (!quiet)
      std::printf("[%d/%zu] (%s): depth %d, %zu parameters, %.2f MFLOPs/token, %lld steps\n", index, e.models.size(),
                  spec.name().c_str(), spec.depth(), r.params, r.flops_per_token / 1e6, (long long)train.steps);
    TrainOptions options;
    options.out_dir = dir;
    options.quiet = quiet;
    if (fs::exists(dir + "/latest")) options.resume_from = dir;
    train_run(model, train, task_batches(*task, train),
              task_validation(*task, std::min(e.eval_examples, 128), e.eval_batch), options);
    r.train_seconds = read_run_totals(dir).seconds;  // every resumed segment's steps
    r.steps = train.steps;
    evaluate_final(model, *task, e, &r);
    write_result(result_path, r);
    report.results.push_back(r);
    if (!quiet) std::printf("[%d/%zu] (%s): mean test accuracy %.1f%%\n", index, e.models.size(), spec.name().c_str(),
                            100 * r.mean_accuracy);
  }
  report.looped = fit_depth(report.results, true);
  report.non_looped = fit_depth(report.results, false);
  report.table_markdown = report_markdown(e, report.results);
  std::string csv = report_csv(report.results), svg = report_svg(report.results, "task " + e.task);
  write_file_atomic(e.out_dir + "/results.csv", csv.data(), csv.size());
  write_file_atomic(e.out_dir + "/plot.svg", svg.data(), svg.size());
  write_file_atomic(e.out_dir + "/report.md", report.table_markdown.data(), report.table_markdown.size());
  return report;
}

}  // namespace recur
