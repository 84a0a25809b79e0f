#!/usr/bin/env python3
"""The looped-transformer LM study of Saunshi et al. (issue 13; SPEC §6; docs/lm.md "The LM study") at CPU scale:
generate the probes (`recur data probes`), prepare their training text as shards (byte-level, or SentencePiece with
--tokenizer bpe|unigram), train (k⊗1), (kL⊗1), (k⊗L), a middle-looped model with kL layer applications, the
regularized (kL⊗1) and the extra depths of each family for the fits, all for the same steps (equal tokens), then
evaluate every saved checkpoint (`recur eval --data` for validation NLL, one `recur eval --fewshot ...` over every
probe task) and write report.md, results.json and one isoplot SVG per category (scripts/lm_study_analysis.py).

Resumable like scripts/lm_compare.py: runs checkpoint into <out>/<name>/ (`--resume` continues), each evaluated
checkpoint leaves <out>/<name>/evals/step_N.json, and a rerun skips what is done. `--runs a,b` trains and
evaluates a subset (two 1-thread processes on disjoint subsets); `--no_eval` only trains; `--report_only` rewrites
the report from what exists.
"""
import argparse
import array
import fcntl
import json
import math
import os
import re
import shlex
import struct
import subprocess
import sys
import time

from lm_study_analysis import category_scores, cross_block_cosine, family_fits, fit_lines, isoplot_svg, \
    majority_baselines, paper_table, percent_gap, seed_mean

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER_ORDER = ["closed_book_qa", "open_book_qa", "math_word", "primitives"]  # the paper's Table 3 columns


def model_runs(k, L, looped_lr=0.0):
    """name -> {label, flags, depth, family}. Families for the depth fits: the non-looped (d⊗1) models, (k⊗1) among
    them, and the looped (k⊗l) models with l > 1 ((k⊗1) counts once, in the non-looped family, as in
    docs/looped.md). The middle-looped and regularized models are in no family, nor is the (k⊗L) twin trained at
    --looped_lr (a looped model can stall at the shared learning rate: docs/lm.md "The LM study")."""
    kl = k * L
    runs = {}
    for depth in sorted({k, 2 * k, kl}):
        runs[f"{depth}x1"] = {"label": f"({depth}⊗1)", "flags": ["--n_layers", str(depth)], "depth": depth,
                              "family": "non-looped"}
    for loops in sorted({2, L}):
        runs[f"{k}x{loops}"] = {"label": f"({k}⊗{loops})", "depth": k * loops, "family": "looped", "loops": (k, loops),
                                "flags": ["--sharing", "cycle", "--n_layers", str(k * loops), "--n_recursions",
                                          str(loops)]}
    if looped_lr:  # (k⊗L) again at its own learning rate, outside the families
        runs[f"{k}x{L}_lr"] = dict(runs[f"{k}x{L}"], label=f"({k}⊗{L}), lr {looped_lr:g}", family=None, lr=looped_lr)
    # middle looping (SPEC §2): one unique layer, the k-layer block looped, one unique layer: kL applications
    middle = (kl - 2) // k
    runs["middle"] = {"label": f"1 + ({k}⊗{middle}) + 1", "depth": 2 + k * middle, "family": None,
                      "flags": ["--n_layers", str(2 + k * middle), "--prelude", "1", "--loop_block", str(k),
                                "--loop_count", str(middle), "--coda", "1"]}
    runs[f"{kl}x1_reg"] = {"label": f"({kl}⊗1) + reg", "depth": kl, "family": None,
                           "flags": ["--n_layers", str(kl), "--loop_reg_k", str(k), "--loop_reg_lambda", "10"]}
    return runs


def base_flags(args):
    return ["--d_model", str(args.d_model), "--n_heads", str(args.n_heads), "--n_kv_heads", str(args.n_heads),
            "--d_ff", str(args.d_ff), "--max_seq_len", str(args.seq_len)]


def run_dir_of(args, name, seed_index):
    """Seed index 0 trains in <out>/<name>/ (the folder of a one-seed study, so a study extends to more seeds by
    running it again with --seeds N), seed index s in <out>/<name>.seed<s>/, as `recur experiment --seeds`."""
    return os.path.join(args.out, name if seed_index == 0 else f"{name}.seed{seed_index}")


def train_flags(args, lr, seed):
    return ["--batch_size", str(args.batch_size), "--seq_len", str(args.seq_len), "--lr", str(lr),
            "--warmup_steps", str(args.warmup_steps), "--steps", str(args.steps), "--eval_every", "0",
            "--eval_batches", "8", "--save_every", str(args.save_every), "--log_every", "50", "--sample_tokens", "0",
            "--seed", str(seed)]


def recur(args, *cmd):
    return [args.recur, "--threads", str(args.threads), *cmd]


def run_logged(cmd, log_path, what):
    print("$", " ".join(cmd), flush=True)
    with open(log_path, "a") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        sys.exit(f"lm_study: {what} failed (exit {proc.returncode}); see {log_path}")


def prepare(args):
    """Probes, then (with --tokenizer bpe|unigram) a SentencePiece model of the training text, then the shards;
    once, under a lock, so two processes started together share it."""
    os.makedirs(args.out, exist_ok=True)
    log = os.path.join(args.out, "prepare_log.txt")
    with open(os.path.join(args.out, ".prepare.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        probes, shards = os.path.join(args.out, "probes"), os.path.join(args.out, "shards")
        if not os.path.exists(os.path.join(probes, "probes.json")):
            run_logged(recur(args, "data", "probes", "--out", probes, *shlex.split(args.probe_options)), log, "probes")
        tokenizer = "byte"
        if args.tokenizer != "byte":
            tokenizer = os.path.join(args.out, "tokenizer.model")
            if not os.path.exists(tokenizer):
                run_logged(recur(args, "tokenizer", "train", "--input", os.path.join(probes, "train"), "--out",
                                 tokenizer, "--model_type", args.tokenizer, "--vocab_size", str(args.vocab_size)),
                           log, "tokenizer train")
        if not os.path.exists(os.path.join(shards, "manifest.json")):
            run_logged(recur(args, "data", "prepare", "--input", os.path.join(probes, "train"), "--unit", "paragraph",
                             "--tokenizer", tokenizer, "--val_fraction", str(args.val_fraction), "--out", shards),
                       log, "data prepare")


def train(args, name, spec, run_dir, seed):
    steps_done = [int(s[5:]) for s in os.listdir(run_dir) if s.startswith("step_")] if os.path.isdir(run_dir) else []
    if args.steps in steps_done:
        return
    os.makedirs(run_dir, exist_ok=True)
    cmd = recur(args, "train", "--data", os.path.join(args.out, "shards")) + base_flags(args) + spec["flags"] + \
        train_flags(args, spec.get("lr", args.lr), seed) + ["--out", run_dir]
    if os.path.exists(os.path.join(run_dir, "latest")):
        cmd += ["--resume", run_dir]
    run_logged(cmd, os.path.join(run_dir, "log.txt"), f"training {name}")


def probe_tasks(args):
    """task -> its JSONL file, task -> its category."""
    tasks = read_probes(args)["tasks"]
    return {task: os.path.join(args.out, "probes", t["file"]) for task, t in sorted(tasks.items())}, \
        {task: t["category"] for task, t in tasks.items()}


def read_probes(args):
    with open(os.path.join(args.out, "probes", "probes.json")) as f:
        return json.load(f)


def run_json(cmd):
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"lm_study: {' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def evaluate(args, run_dir):
    """Every saved checkpoint of a run: validation NLL on the shards and every probe task in one few-shot call."""
    files, _ = probe_tasks(args)
    os.makedirs(os.path.join(run_dir, "evals"), exist_ok=True)
    for step_dir in sorted(s for s in os.listdir(run_dir) if s.startswith("step_")):
        out = os.path.join(run_dir, "evals", step_dir + ".json")
        if os.path.exists(out):
            continue
        checkpoint = os.path.join(run_dir, step_dir)
        start = time.time()
        val = run_json(recur(args, "eval", "--checkpoint", checkpoint, "--data", os.path.join(args.out, "shards"),
                             "--json"))
        fewshot = [flag for f in files.values() for flag in ("--fewshot", f)]
        tasks = run_json(recur(args, "eval", "--checkpoint", checkpoint, *fewshot, "--shots", str(args.shots),
                               "--max_items", str(args.max_items), "--max_gen_tokens", str(args.max_gen_tokens),
                               "--json"))
        result = {"step": int(step_dir[5:]), "val": val, "fewshot": tasks, "eval_seconds": time.time() - start}
        with open(out + ".tmp", "w") as f:
            json.dump(result, f, indent=1)
        os.replace(out + ".tmp", out)


def training_summary(run_dir):
    """params and forward FLOPs per token from the training log, steps and wall time from metrics.jsonl (the last
    row of a step wins: a resumed run repeats the steps after its last checkpoint)."""
    with open(os.path.join(run_dir, "log.txt")) as f:
        text = f.read()
    params = int(re.findall(r"\| (\d+) parameters \|", text)[-1])
    mflops = float(re.findall(r"\| ([0-9.]+) MFLOPs/token", text)[-1])
    rows = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                rows[row["step"]] = row
    return params, mflops * 1e6, max(rows), sum(r["seconds"] for r in rows.values())


def layer_weights(path):
    """The per-layer weights of a model.safetensors (little-endian F32, docs/design.md): [{group: array}]."""
    with open(path, "rb") as f:
        header_len = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(header_len))
        data = f.read()
    layers = {}
    for name, t in header.items():
        match = re.fullmatch(r"model\.layers\.(\d+)\.(.+)\.weight", name)
        if match and t["dtype"] == "F32":
            begin, end = t["data_offsets"]
            layers.setdefault(int(match[1]), {})[match[2]] = array.array("f", data[begin:end])
    return [layers[i] for i in sorted(layers)]


def collect(args, runs, category_of):
    """The models whose every seed has finished and been evaluated: name -> the fields the analysis functions read,
    averaged over the seeds by seed_mean."""
    models = {}
    for name, spec in runs.items():
        seeds = [collect_run(args, name, spec, run_dir_of(args, name, s), category_of) for s in range(args.seeds)]
        if all(seeds):
            models[name] = seed_mean(seeds)
    return models


def collect_run(args, name, spec, run_dir, category_of):
    """One seed's run with its evaluated checkpoints, or None while it has not finished or been evaluated."""
    evals_dir = os.path.join(run_dir, "evals")
    if not os.path.isdir(evals_dir):
        return None
    evals = []
    for file in sorted(os.listdir(evals_dir)):
        with open(os.path.join(evals_dir, file)) as f:
            evals.append(json.load(f))
    evals.sort(key=lambda e: e["step"])
    if not evals or evals[-1]["step"] != args.steps:
        return None
    params, flops, steps, seconds = training_summary(run_dir)
    checkpoints = [{"step": e["step"], "val_nll": e["val"]["nll"],
                    "categories": category_scores(e["fewshot"], category_of), "tasks": e["fewshot"]["tasks"],
                    "eval_seconds": e["eval_seconds"]} for e in evals]
    model = {"label": spec["label"], "flags": spec["flags"], "lr": spec.get("lr", args.lr), "depth": spec["depth"],
             "family": spec["family"], "params": params, "flops_per_token": flops, "steps": steps,
             "train_seconds": seconds, "val_nll": checkpoints[-1]["val_nll"],
             "final": checkpoints[-1]["categories"], "checkpoints": checkpoints}
    if "loops" in spec:
        model["loops"] = spec["loops"]
    if name.startswith(f"{args.k * args.L}x1"):  # the regularizer's twins: how alike are their k-layer blocks
        weights = layer_weights(os.path.join(run_dir, f"step_{args.steps:08d}", "model.safetensors"))
        model["cross_block_cosine"] = cross_block_cosine(weights, args.k)
    return model


def loop_gaps(models, categories):
    """%Gap per category for every looped model (k⊗l) whose (k⊗1) and (kl⊗1) are in the study."""
    gaps = {}
    for name, m in models.items():
        if "loops" not in m:
            continue
        k, loops = m["loops"]
        shallow, deep = models.get(f"{k}x1"), models.get(f"{k * loops}x1")
        if shallow and deep:
            gaps[name] = {c: percent_gap(m["final"][c], shallow["final"][c], deep["final"][c]) for c in categories}
    return gaps


def nll_cell(model):
    """The validation log-perplexity, ± over seeds when the model is a mean over seeds."""
    return f"{model['val_nll']:.4f}" + (f" ± {model['val_nll_se']:.4f}" if "val_nll_se" in model else "")


def regularizer_lines(models, categories, k, L):
    """The regularized (kL⊗1) against its unregularized twin: val log-ppl and each category's difference ± s.e."""
    plain, reg = models.get(f"{k * L}x1"), models.get(f"{k * L}x1_reg")
    if not (plain and reg):
        return ["(the regularized model or its twin has not finished)"]
    lines = [f"| | {plain['label']} | {reg['label']} | reg − plain |", "|---|---|---|---|",
             f"| val log-ppl | {nll_cell(plain)} | {nll_cell(reg)} | {reg['val_nll'] - plain['val_nll']:+.4f}"
             + (f" ± {math.hypot(plain['val_nll_se'], reg['val_nll_se']):.4f} |" if "val_nll_se" in plain else " |"),
             f"| cross-block cosine (k = {k}) | {plain['cross_block_cosine']:.3f} | {reg['cross_block_cosine']:.3f} | "
             f"{reg['cross_block_cosine'] - plain['cross_block_cosine']:+.3f} |"]
    for c in categories:
        (a, sa), (b, sb) = plain["final"][c], reg["final"][c]
        lines.append(f"| {c} | {100 * a:.1f} ± {100 * sa:.1f} | {100 * b:.1f} ± {100 * sb:.1f} | "
                     f"{100 * (b - a):+.1f} ± {100 * (sa * sa + sb * sb) ** 0.5:.1f} |")
    return lines


def seeds_text(args):
    if args.seeds == 1:
        return f"seed {args.seed}"
    return (f"{args.seeds} seeds ({args.seed}..{args.seed + args.seeds - 1}; every score the mean over seeds ± the "
            f"larger of its s.e. over seeds and the test items' s.e. of that mean)")


def write_report(args, runs, models, categories):
    order = [n for n in runs if n in models]
    gaps = loop_gaps(models, categories)
    fits = family_fits(models, categories, {n: m["family"] for n, m in models.items() if m["family"]})
    labels = {n: m["label"] for n, m in models.items()}
    os.makedirs(args.docs, exist_ok=True)
    for c in categories:
        curves = [(m["label"], [(p["val_nll"], p["categories"][c]) for p in m["checkpoints"]])
                  for m in (models[n] for n in order)]
        with open(os.path.join(args.docs, f"isoplot_{c}.svg"), "w") as f:
            f.write(isoplot_svg(f"{c}: metric against validation log-perplexity, one curve per model", curves))
    eval_seconds = sum(p["eval_seconds"] for m in models.values() for p in m["checkpoints"])
    text = [f"# The LM study: {args.steps} steps per model ({args.steps * args.batch_size * args.seq_len / 1e6:.2f}M "
            f"tokens), {args.tokenizer} tokens, {seeds_text(args)}", "",
            f"d_model {args.d_model}, {args.n_heads} heads, d_ff {args.d_ff}, seq_len {args.seq_len}, batch "
            f"{args.batch_size}, lr {args.lr}, warmup {args.warmup_steps}; probes `{args.probe_options}`; "
            f"{args.shots}-shot, first {args.max_items or 'all'} items per task, at most {args.max_gen_tokens} "
            f"generated tokens; checkpoints every {args.save_every} "
            f"steps; {args.threads} thread(s) per process. Category scores: mean of the category's tasks ± s.e.; "
            f"%Gap ± its delta-method s.e. (in parentheses when the (k⊗1)→(kL⊗1) gap is within 2 s.e.).", "",
            paper_table(models, order, categories, gaps, majority_baselines(read_probes(args)["tasks"])), "",
            "## Depth fits acc = α·ln D + β (final checkpoints; ± is α's s.e. from the points' s.e.)", "",
            *fit_lines(fits, categories, labels), "",
            "## The looping-inspired regularizer against its twin", "", *regularizer_lines(models, categories,
                                                                                      args.k, args.L), "",
            f"Isoplots: " + ", ".join(f"[{c}](isoplot_{c}.svg)" for c in categories) +
            f". Evaluation took {eval_seconds:.0f} s in all.", ""]
    with open(os.path.join(args.docs, "report.md"), "w") as f:
        f.write("\n".join(text))
    settings = {k: v for k, v in vars(args).items() if k not in ("recur", "report_only", "no_eval", "runs")}
    with open(os.path.join(args.docs, "results.json"), "w") as f:
        json.dump({"settings": settings, "categories": categories, "models": models, "gaps": gaps, "fits": fits},
                  f, indent=1)
    print("\n".join(text))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recur", default=os.path.join(ROOT, "build", "recur"))
    p.add_argument("--out", default="runs/lm_study", help="probes, shards and run folders")
    p.add_argument("--docs", default="docs/results/lm_study", help="where report.md, results.json, SVGs go")
    p.add_argument("--runs", default="", help="comma-separated subset of the runs (default: all)")
    p.add_argument("--k", type=int, default=2, help="the looped block's layers")
    p.add_argument("--L", type=int, default=3, help="loops of (k⊗L); the deep model has kL layers")
    p.add_argument("--probe_options",
                   default="--people 100 --igsm_train 500 --open_book_train 200 --primitives_train 250",
                   help="flags for `recur data probes` (the default: about a quarter of its text, so biographies repeat)")
    p.add_argument("--tokenizer", default="byte", choices=["byte", "bpe", "unigram"])
    p.add_argument("--vocab_size", type=int, default=1024,
                   help="SentencePiece vocabulary (--tokenizer bpe|unigram; the probes allow at most 1969 pieces)")
    p.add_argument("--val_fraction", type=float, default=0.02)
    p.add_argument("--d_model", type=int, default=128)
    p.add_argument("--n_heads", type=int, default=4)
    p.add_argument("--d_ff", type=int, default=344)
    p.add_argument("--seq_len", type=int, default=256)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--steps", type=int, default=500, help="training steps of every model (equal tokens)")
    p.add_argument("--save_every", type=int, default=125, help="checkpoints evaluated for the isoplots")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup_steps", type=int, default=50)
    p.add_argument("--looped_lr", type=float, default=1e-3,
                   help="also train (k⊗L) at this learning rate (a run outside the families; 0: no such run)")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--seeds", type=int, default=1,
                   help="train every model N times, seed index s with --seed + s; the report gives mean ± s.e.")
    p.add_argument("--shots", type=int, default=0)
    p.add_argument("--max_items", type=int, default=0, help="score the first N items of each task (0: all)")
    p.add_argument("--max_gen_tokens", type=int, default=24,
                   help="generation cut (the probes' longest target, ' September 16, 1951', is 19 bytes)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no_eval", action="store_true", help="only train")
    p.add_argument("--report_only", action="store_true", help="only rewrite the report from what is evaluated")
    return p.parse_args()


def main():
    args = parse_args()
    runs = model_runs(args.k, args.L, args.looped_lr)
    names = [n for n in args.runs.split(",") if n] or list(runs)
    unknown = [n for n in names if n not in runs]
    if unknown:
        sys.exit(f"lm_study: unknown run(s) {unknown}; choose from {list(runs)}")
    if not args.report_only:
        prepare(args)
        for name in names:
            for seed_index in range(args.seeds):
                run_dir = run_dir_of(args, name, seed_index)
                train(args, name, runs[name], run_dir, args.seed + seed_index)
                if not args.no_eval:
                    evaluate(args, run_dir)
    if os.path.exists(os.path.join(args.out, "probes", "probes.json")):
        _, category_of = probe_tasks(args)
        categories = sorted(set(category_of.values()), key=lambda c: (PAPER_ORDER.index(c) if c in PAPER_ORDER
                                                                       else len(PAPER_ORDER), c))
        models = collect(args, runs, category_of)
        if models:
            write_report(args, runs, models, categories)


if __name__ == "__main__":
    main()
