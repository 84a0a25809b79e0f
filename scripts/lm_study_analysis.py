"""The LM study's analysis (scripts/lm_study.py, docs/lm.md "The LM study"), pure functions on eval outputs so that
scripts/lm_study_test.py can check them on hand-made numbers: task scores grouped into the probes' categories,
%Gap with its standard error, the depth fits acc = α·ln D + β per family, the paper-style table and the isoplot SVGs.

A score is a pair (mean, standard error). Task scores come from `recur eval --fewshot ... --json`: exact_match of a
generation task, acc of a multiple-choice task, each with the harness's sample standard error sqrt(p(1-p)/(n-1)).
"""
import math


def task_score(task):
    """(metric, s.e.) of one task object of `recur eval --fewshot --json`."""
    if task["kind"] == "generation":
        return task["exact_match"], task["exact_match_stderr"]
    return task["acc"], task["acc_stderr"]


def category_scores(fewshot_json, category_of):
    """Per category: the unweighted mean of its tasks' metrics (the paper averages the tasks of a group) and its
    standard error sqrt(Σ se_i²) / m over the m tasks (independent test items). category_of: task stem -> category;
    a task without a category is an error (the probes' probes.json names every task)."""
    by_category = {}
    for task in fewshot_json["tasks"]:
        name = task["task"]
        if name not in category_of:
            raise ValueError(f"task {name!r} has no category in probes.json")
        by_category.setdefault(category_of[name], []).append(task_score(task))
    scores = {}
    for category, values in by_category.items():
        m = len(values)
        mean = sum(v for v, _ in values) / m
        se = math.sqrt(sum(s * s for _, s in values)) / m
        scores[category] = (mean, se)
    return scores


def mean_se(values):
    """(mean, standard error of the mean: sample standard deviation / sqrt(n)); s.e. 0 for a single value."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def seed_score(scores):
    """One score from each seed's (acc, item s.e.): the mean over seeds ± the larger of the s.e. over seeds and
    the item s.e. of a mean of n independent test samples, sqrt(Σ se_i²)/n (with 3 seeds the seeds' spread is a
    rough estimate and can be 0 by chance; the test items' sampling noise is a floor under it)."""
    mean, seed_se = mean_se([a for a, _ in scores])
    item_se = math.sqrt(sum(se * se for _, se in scores)) / len(scores)
    return mean, max(seed_se, item_se)


def seed_mean(runs):
    """One model from its seeds' runs (collect()'s models, same steps and checkpoints): every category score by
    seed_score, the validation NLL and the cross-block cosine as mean ± s.e. over seeds, the mean training time,
    and each seed's final scores under "per_seed". One run is returned unchanged."""
    if len(runs) == 1:
        return runs[0]
    first, n = runs[0], len(runs)
    model = dict(first, seeds=n, per_seed=[{"val_nll": r["val_nll"], "final": r["final"]} for r in runs])
    model["final"] = {c: seed_score([r["final"][c] for r in runs]) for c in first["final"]}
    model["val_nll"], model["val_nll_se"] = mean_se([r["val_nll"] for r in runs])
    model["train_seconds"] = sum(r["train_seconds"] for r in runs) / n
    model["checkpoints"] = [dict(p, val_nll=mean_se([r["checkpoints"][i]["val_nll"] for r in runs])[0],
                                 categories={c: seed_score([r["checkpoints"][i]["categories"][c] for r in runs])
                                             for c in p["categories"]},
                                 eval_seconds=sum(r["checkpoints"][i]["eval_seconds"] for r in runs))
                            for i, p in enumerate(first["checkpoints"])]
    if "cross_block_cosine" in first:
        model["cross_block_cosine"] = mean_se([r["cross_block_cosine"] for r in runs])[0]
    return model


def majority_baselines(probe_tasks):
    """Per category: the mean over its tasks of the majority-answer baseline that probes.json gives per task."""
    by_category = {}
    for task in probe_tasks.values():
        by_category.setdefault(task["category"], []).append(task["majority_baseline"])
    return {c: sum(v) / len(v) for c, v in by_category.items()}


def percent_gap(looped, shallow, deep):
    """How much of the (k⊗1) -> (kL⊗1) gap (k⊗L) recovers: g = (looped - shallow) / (deep - shallow), with the
    delta-method standard error sqrt(se_l² + g²·se_d² + (1-g)²·se_s²) / |deep - shallow| (the three models' test
    items are scored independently). The gap is `defined` only when deep - shallow exceeds two standard errors of
    that difference: a ratio over noise means nothing."""
    (l, se_l), (s, se_s), (d, se_d) = looped, shallow, deep
    span = d - s
    noise = 2 * math.hypot(se_d, se_s)
    result = {"looped_minus_shallow": l - s, "deep_minus_shallow": span, "noise": noise,
              "defined": abs(span) > max(noise, 1e-12), "gap": None, "gap_se": None}
    if abs(span) > 1e-12:
        g = (l - s) / span
        result["gap"] = g
        result["gap_se"] = math.sqrt(se_l ** 2 + g * g * se_d ** 2 + (1 - g) ** 2 * se_s ** 2) / abs(span)
    return result


def fit_log_depth(points):
    """Least squares acc = α·ln D + β over points [(name, D, (acc, se))]. α's standard error is propagated from
    the points' standard errors (α = Σ w_i acc_i with w_i = (x_i - x̄) / Sxx, so se_α = sqrt(Σ w_i² se_i²)): the
    measurement noise of α, not a residual estimate. None with fewer than two distinct depths; `exact` when two
    points determine the line."""
    xs = [math.log(d) for _, d, _ in points]
    n = len(points)
    if n < 2:
        return None
    mean_x = sum(xs) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx < 1e-12:
        return None
    weights = [(x - mean_x) / sxx for x in xs]
    alpha = sum(w * acc for w, (_, _, (acc, _)) in zip(weights, points))
    mean_y = sum(acc for _, _, (acc, _) in points) / n
    alpha_se = math.sqrt(sum((w * se) ** 2 for w, (_, _, (_, se)) in zip(weights, points)))
    return {"models": [name for name, _, _ in points], "depths": [d for _, d, _ in points], "alpha": alpha,
            "alpha_se": alpha_se, "beta": mean_y - alpha * mean_x, "points": n, "exact": n == 2}


def family_fits(models, categories, family_of):
    """Per family (a name -> family map; models without a family are left out) and category: the fit over that
    family's final-checkpoint scores. models: name -> {"depth": D, "final": {category: (acc, se)}}."""
    fits = {}
    for family in sorted(set(family_of.values())):
        members = [name for name in models if family_of.get(name) == family]
        fits[family] = {c: fit_log_depth([(n, models[n]["depth"], models[n]["final"][c]) for n in members
                                          if c in models[n]["final"]]) for c in categories}
    return fits


def pct(score):
    """A score as 'acc ± se' in percent."""
    return f"{100 * score[0]:.1f} ± {100 * score[1]:.1f}"


def gap_cell(gap):
    if gap["gap"] is None:
        return "no gap"
    text = f"{round(100 * gap['gap'])} ± {round(100 * gap['gap_se'])}%"  # round() to an int: no "-0"
    return text if gap["defined"] else f"({text}; gap within noise)"


def paper_table(models, order, categories, gaps, majority=None):
    """The paper-style table: one row per model (in `order`) with params, forward FLOPs per token, val log-ppl
    (the NLL in nats per token of the final checkpoint, ± over seeds when seed_mean made the model), each category
    as acc ± s.e. in percent, steps and wall time; then a %Gap row per looped model in `gaps` (looped name ->
    {category: percent_gap result}) and, given `majority` (category -> baseline), a row of the majority-answer
    baselines."""
    head = ["model", "unique params", "MFLOPs/token", "val log-ppl"] + categories + ["steps", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in order:
        m = models[name]
        val = f"{m['val_nll']:.4f}" + (f" ± {m['val_nll_se']:.4f}" if "val_nll_se" in m else "")
        cells = [m["label"], f"{m['params'] / 1e6:.3f}M", f"{m['flops_per_token'] / 1e6:.2f}", val]
        cells += [pct(m["final"][c]) if c in m["final"] else "-" for c in categories]
        cells += [str(m["steps"]), f"{m['train_seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    for looped, by_category in gaps.items():
        cells = [f"%Gap of {models[looped]['label']}", "", "", ""]
        cells += [gap_cell(by_category[c]) if c in by_category else "-" for c in categories] + ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    if majority:
        cells = ["majority answer", "", "", ""] + [f"{100 * majority[c]:.1f}" if c in majority else "-"
                                                   for c in categories] + ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fit_lines(fits, categories, labels):
    """The depth fits as markdown bullets, each naming the points it uses."""
    lines = []
    for family, by_category in fits.items():
        for c in categories:
            fit = by_category.get(c)
            if fit is None:
                lines.append(f"- {family}, {c}: not enough depths to fit")
                continue
            used = ", ".join(f"{labels[n]} (D={d})" for n, d in zip(fit["models"], fit["depths"]))
            exact = "; two points: the line fits them exactly" if fit["exact"] else ""
            lines.append(f"- {family}, {c}: α = {fit['alpha']:.4f} ± {fit['alpha_se']:.4f}, β = {fit['beta']:.4f} "
                         f"on {used}{exact}")
    return lines


COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def _scale(lo, hi, out_lo, out_hi):
    if abs(hi - lo) < 1e-12:  # one value: centre it (lo > hi is a reversed axis)
        lo, hi = lo - 0.5, hi + 0.5
    return lambda v: out_lo + (v - lo) / (hi - lo) * (out_hi - out_lo)


def isoplot_svg(title, curves, width=560, height=380):
    """One category's isoplot: metric (percent) against validation log-perplexity, one polyline per model through
    its checkpoints (ordered by step) with ±1 s.e. bars. curves: [(label, [(val_nll, (acc, se))...])]."""
    xs = [x for _, pts in curves for x, _ in pts]
    ys = [v for _, pts in curves for _, (a, s) in pts for v in (a - s, a + s)]
    left, right, top, bottom = 60, width - 150, 30, height - 45
    sx = _scale(max(xs), min(xs), left, right)  # lower perplexity to the right: training moves left to right
    sy = _scale(min(ys + [0.0]), max(ys + [0.01]), bottom, top)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="11">', f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="18" font-size="13">{title}</text>',
           f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/>',
           f'<line x1="{left}" y1="{bottom}" x2="{left}" y2="{top}" stroke="black"/>',
           f'<text x="{(left + right) / 2}" y="{height - 8}" text-anchor="middle">validation log-perplexity '
           f'(nats per token; lower to the right)</text>']
    for v, anchor in ((max(xs), "start"), (min(xs), "end")):
        out.append(f'<text x="{sx(v):.1f}" y="{bottom + 15}" text-anchor="{anchor}">{v:.3f}</text>')
    for v in (min(ys + [0.0]), max(ys + [0.01])):
        out.append(f'<text x="{left - 4}" y="{sy(v) + 4:.1f}" text-anchor="end">{100 * v:.1f}%</text>')
    for i, (label, pts) in enumerate(curves):
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{sx(x):.1f},{sy(a):.1f}" for x, (a, _) in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        for x, (a, s) in pts:
            out.append(f'<line x1="{sx(x):.1f}" y1="{sy(a - s):.1f}" x2="{sx(x):.1f}" y2="{sy(a + s):.1f}" '
                       f'stroke="{color}"/><circle cx="{sx(x):.1f}" cy="{sy(a):.1f}" r="2.5" fill="{color}"/>')
        y = top + 14 * i
        out.append(f'<line x1="{right + 10}" y1="{y}" x2="{right + 30}" y2="{y}" stroke="{color}" stroke-width="2"/>'
                   f'<text x="{right + 35}" y="{y + 4}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    return dot / norm if norm > 0 else 0.0


def cross_block_cosine(layers, k):
    """The looping regularizer's similarity (SPEC §2): the mean over parameter groups of the mean cosine between
    layer i·k+j and (i+1)·k+j (the L-k pairs of consecutive k-layer blocks). layers: one {group: flat weights} per
    layer; 1.0 for a model whose blocks are identical (a looped model's weights)."""
    n = len(layers)
    if k <= 0 or n % k or n // k < 2:
        raise ValueError(f"{n} layers do not form at least two blocks of {k}")
    pairs = [(l, l + k) for l in range(n - k)]
    per_group = [sum(cosine(layers[a][g], layers[b][g]) for a, b in pairs) / len(pairs) for g in sorted(layers[0])]
    return sum(per_group) / len(per_group)
