// The experiment's report files: markdown table with depth fits and %Gap, CSV rows and an SVG plot, rendered
// from ExperimentReport (src/experiment computes every number shown here) and written into the experiment folder.
#include "recur/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "recur/safetensors.h"

namespace recur {

// One row per model: size, cost, accuracy per difficulty, the mean with its standard error, test examples, time.
static void markdown_table(std::ostringstream& out, const std::vector<ModelResult>& results) {
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
}

static void markdown_depth_fits(std::ostringstream& out, const std::vector<ModelResult>& results) {
  DepthFit lf = fit_depth(results, true), nf = fit_depth(results, false);
  out << "\nDepth scaling, accuracy = α·ln(D) + β (accuracy as a fraction):\n";
  char buf[64];
  auto fit_line = [&](const char* name, const DepthFit& f) {
    if (f.points == 0) {
      out << "- " << name << ": not enough depths to fit\n";
    } else {
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
}

static void markdown_gaps(std::ostringstream& out, const std::vector<ModelResult>& results) {
  std::vector<LoopGap> gaps = loop_gaps(results);
  if (!gaps.empty()) out << "\n%Gap = (looped − shallow) / (deep − shallow), on mean accuracy:\n";
  char buf[64];
  for (const LoopGap& g : gaps) {
    if (!g.defined) {
      std::snprintf(buf, sizeof buf, "%.1f", 100 * g.deep_minus_shallow);
      out << "- (" << g.looped << "): (" << g.deep << ") − (" << g.shallow << ") = " << buf
          << " points, within two standard errors: %Gap undefined\n";
      continue;
    }
    std::snprintf(buf, sizeof buf, "%.0f%%", 100 * g.looped_minus_shallow / g.deep_minus_shallow);
    out << "- (" << g.looped << ") between (" << g.shallow << ") and (" << g.deep << "): " << buf << "\n";
  }
}

std::string report_markdown(const std::vector<ModelResult>& results) {
  if (results.empty()) return "(no results)\n";
  std::ostringstream out;
  markdown_table(out, results);
  markdown_depth_fits(out, results);
  markdown_gaps(out, results);
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
    s << "<circle cx='" << X(r.spec.depth()) << "' cy='" << Y(r.mean_accuracy) << "' r='5' fill='" << color
      << "'/><text x='" << X(r.spec.depth()) + 7 << "' y='" << Y(r.mean_accuracy) - 6 << "' font-size='10'>("
      << r.spec.name() << ")</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

std::string write_experiment_report(const ExperimentConfig& config, const ExperimentReport& report) {
  std::string markdown = report_markdown(report.results);
  write_text_atomic(config.out_dir + "/results.csv", report_csv(report.results));
  write_text_atomic(config.out_dir + "/plot.svg", report_svg(report.results, "task " + config.task));
  write_text_atomic(config.out_dir + "/report.md", markdown);
  return markdown;
}

}  // namespace recur
