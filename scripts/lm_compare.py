#!/usr/bin/env python3
"""LM comparison at equal training FLOPs (issue 4), or with --steps at equal steps (equal tokens: the MoR paper's
fixed-token control, where MoR spends less compute than vanilla): vanilla, recursive (Cycle, Middle-Cycle) and
Mixture-of-Recursions (expert / token choice, N_r = 2 and 3, with and without recursive KV sharing), each trained
by `recur train --flops_budget` on the built-in corpus, then tabulated (validation NLL, unique parameters, FLOPs
actually run, tokens, wall time) into report.md and results.csv.

`--data DIR` trains on a shard folder of `recur data prepare` instead (e.g. SentencePiece tokens; its vocabulary
comes from the shards) and adds each final model's bits per byte on its validation split; `--fewshot FILE`
(repeatable) adds each final model's score on those harness tasks (`recur eval --fewshot`, docs/lm.md).

Resumable: every run checkpoints into <out>/<name>/ and a finished run leaves result.json; rerunning the command
skips finished runs and resumes unfinished ones. `--runs a,b` trains a subset (e.g. two processes on disjoint
subsets, one thread each); `--report_only` rewrites the tables from what has finished. `--mpi_ranks N` trains each
run as N data-parallel ranks of `--threads` threads (docs/distributed.md): the same global batch, so the same
results within the reduction-order tolerance.
"""
import argparse
import csv
import json
import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> model flags on top of the shared base (d_model 256, 4 heads, d_ff 688). The vanilla model has 8 layers;
# recursive models keep 8 layer applications where the layout allows (Cycle N_r = 3 needs 9 = 3 x 3).
MIDDLE = ["--sharing", "middle_cycle", "--n_layers", "8"]
RUNS = {
    "vanilla": ["--n_layers", "8"],
    "cycle_r2": ["--sharing", "cycle", "--n_layers", "8", "--n_recursions", "2"],
    "cycle_r3": ["--sharing", "cycle", "--n_layers", "9", "--n_recursions", "3"],
    "middle_cycle_r2": MIDDLE + ["--n_recursions", "2"],
    "middle_cycle_r3": MIDDLE + ["--n_recursions", "3"],
}
for routing in ("expert", "token"):
    for nr in (2, 3):
        for kv in (False, True):
            name = f"mor_{routing}_r{nr}" + ("_kv" if kv else "")
            RUNS[name] = MIDDLE + ["--n_recursions", str(nr), "--mor_routing", routing] + \
                (["--mor_kv_sharing", "true"] if kv else [])

BASE = ["--d_model", "256", "--n_heads", "4", "--n_kv_heads", "4", "--d_ff", "688", "--max_seq_len", "256"]


def train_flags(args):
    length = ["--steps", str(args.steps)] if args.steps else ["--flops_budget", str(args.budget)]
    return ["--batch_size", str(args.batch_size), "--seq_len", "256", "--lr", str(args.lr), "--warmup_steps",
            str(args.warmup_steps)] + length + ["--eval_every", "0", "--eval_batches",
            str(args.eval_batches), "--save_every", "50", "--log_every", "25", "--sample_tokens", "0", "--seed",
            str(args.seed), "--precision", args.precision]


def read_metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def mpi_prefix(args):
    """mpirun for --mpi_ranks: as root it needs --allow-run-as-root, and more ranks than cores --oversubscribe (the
    flags the mpi_train ctests use)."""
    if args.mpi_ranks <= 1:
        return []
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    return shlex.split(args.mpirun) + ["-np", str(args.mpi_ranks), "--oversubscribe"] + root


def train_one(args, name, run_dir):
    os.makedirs(run_dir, exist_ok=True)
    cmd = mpi_prefix(args) + [args.recur, "--threads", str(args.threads), "train"] + BASE + RUNS[name] + \
        train_flags(args) + (["--data", args.data] if args.data else []) + ["--out", run_dir]
    if os.path.exists(os.path.join(run_dir, "latest")):
        cmd += ["--resume", run_dir]
    print("$", " ".join(cmd), flush=True)
    with open(os.path.join(run_dir, "log.txt"), "a") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        sys.exit(f"lm_compare: run {name} failed (exit {proc.returncode}); see {run_dir}/log.txt")
    evaluate_final(args, run_dir)
    return summarize(args, name, run_dir)


def recur_json(args, flags):
    out = subprocess.run([args.recur, "--threads", str(args.threads), "eval"] + flags + ["--json"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def evaluate_final(args, run_dir):
    """With --data or --fewshot: the final model's bits per byte and harness scores, into eval.json."""
    if not args.data and not args.fewshot:
        return
    result = {}
    if args.data:
        result["lm"] = recur_json(args, ["--checkpoint", run_dir, "--data", args.data])
    if args.fewshot:
        flags = ["--checkpoint", run_dir, "--max_items", str(args.max_items)]
        for f in args.fewshot:
            flags += ["--fewshot", f]
        result["fewshot"] = recur_json(args, flags)["tasks"]
    with open(os.path.join(run_dir, "eval.json"), "w") as f:
        json.dump(result, f, indent=1)


def summarize(args, name, run_dir):
    """A finished run's result (also written to result.json), from its log and metrics."""
    with open(os.path.join(run_dir, "log.txt")) as log:
        text = log.read()
    params = int(re.findall(r"\| (\d+) parameters \|", text)[-1])
    budgeted = re.findall(r"= (\d+) steps of", text)
    steps = int(budgeted[-1]) if budgeted else args.steps
    # the last row of each step wins: a resumed run may repeat steps after its last checkpoint
    rows = {}
    for row in read_metrics(run_dir):
        rows[row["step"]] = row
    assert len(rows) == steps and max(rows) == steps, f"{name}: metrics cover {len(rows)} of {steps} steps"
    final = rows[steps]
    result = {
        "name": name, "flags": RUNS[name], "params": params, "steps": steps,
        "tokens": steps * args.batch_size * 256,
        "train_flops": sum(r["flops"] for r in rows.values()),
        "train_seconds": sum(r["seconds"] for r in rows.values()),
        "val_nll": final["val_loss"],
        "val_nll_causal": final.get("val_loss_causal"),
        "mor": {k: v for k, v in final.items() if k.startswith("mor_")},
        "budget": None if args.steps else args.budget, "threads": args.threads, "ranks": args.mpi_ranks,
    }
    eval_path = os.path.join(run_dir, "eval.json")
    if os.path.exists(eval_path):
        with open(eval_path) as f:
            result["eval"] = json.load(f)
    with open(os.path.join(run_dir, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def describe(name):
    if name == "vanilla":
        return "vanilla", "-", "-", "-"
    kind, _, rest = name.rpartition("_r")
    nr = rest.split("_")[0]
    kv = "yes" if name.endswith("_kv") else "no"
    if kind.startswith("mor_"):
        return "middle_cycle", nr, kind[4:], kv
    return kind, nr, "-", "-"


def causal(r):  # expert choice: validation under the causal routing rule that decoding uses
    return f"{r['val_nll_causal']:.4f}" if r.get("val_nll_causal") is not None else "-"


def active(r, sep, causal_rule=False):  # active fraction per recursion step, under top-k or the causal rule
    keys = sorted(k for k in r["mor"] if k.startswith("mor_active_") and k.endswith("_causal") == causal_rule)
    return sep.join(f"{r['mor'][k]:.{3 if sep == ';' else 2}f}" for k in keys)


def task_names(results):  # the harness tasks of --fewshot, in the order the runs were scored
    for r in results:
        if "fewshot" in r.get("eval", {}):
            return [t["task"] for t in r["eval"]["fewshot"]]
    return []


def task_score(r, task):  # exact match (generation) or acc (multiple choice), in percent with its standard error
    for t in r.get("eval", {}).get("fewshot", []):
        if t["task"] == task:
            metric = "exact_match" if t["kind"] == "generation" else "acc"
            se = t[metric + "_stderr"]
            return f"{100 * t[metric]:.1f} ± {100 * se:.1f}" if se is not None else f"{100 * t[metric]:.1f}"
    return "-"


def bits_per_byte(r):
    lm = r.get("eval", {}).get("lm")
    return f"{lm['bits_per_byte']:.4f}" if lm else "-"


def extra_columns(results):
    """(headers, per result the cells): bits per byte with --data, one column per harness task with --fewshot."""
    tasks = task_names(results)
    headers = (["val bits/byte"] if any("lm" in r.get("eval", {}) for r in results) else []) + tasks
    cells = [([bits_per_byte(r)] if len(headers) > len(tasks) else []) + [task_score(r, t) for t in tasks]
             for r in results]
    return headers, cells


def write_report(args, results):
    os.makedirs(args.docs, exist_ok=True)
    cols = ["name", "sharing", "N_r", "routing", "kv_sharing", "params", "train_flops", "tokens", "steps",
            "train_seconds", "val_nll", "val_nll_causal", "active_fractions", "active_fractions_causal"]
    extra, extra_cells = extra_columns(results)
    with open(os.path.join(args.docs, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols + extra)
        for r, cells in zip(results, extra_cells):
            w.writerow([r["name"], *describe(r["name"]), r["params"], f"{r['train_flops']:.4g}", r["tokens"],
                        r["steps"], f"{r['train_seconds']:.0f}", f"{r['val_nll']:.4f}", causal(r), active(r, ";"),
                        active(r, ";", True)] + cells)
    unit = "nats/token" if args.data else "nats/byte"
    lines = ["| model | sharing | N_r | routing | KV sharing | unique params | train FLOPs | tokens | steps | wall s "
             f"| val NLL ({unit}) | val NLL, causal routing | active fraction per step | the same, causal routing |"
             + "".join(f" {h} |" for h in extra), "|---" * (14 + len(extra)) + "|"]
    for r, cells in zip(results, extra_cells):
        lines.append(f"| {r['name']} | " + " | ".join(describe(r["name"])) +
                     f" | {r['params'] / 1e6:.2f}M | {r['train_flops']:.3g} | {r['tokens'] / 1e3:.0f}k | {r['steps']}"
                     f" | {r['train_seconds']:.0f} | {r['val_nll']:.4f} | {causal(r)} | {active(r, ' / ') or '-'}"
                     f" | {active(r, ' / ', True) or '-'} |" + "".join(f" {c} |" for c in cells))
    table = "\n".join(lines)
    title = (f"equal steps ({args.steps} per run, {args.steps * args.batch_size * 256 / 1e3:.0f}k tokens)" if args.steps
             else f"equal training FLOPs ({args.budget:.3g} per run)")
    with open(os.path.join(args.docs, "report.md"), "w") as f:
        data = f" on {args.data}" if args.data else " on the built-in corpus"
        f.write(f"# LM comparison at {title}{data}; seed {args.seed}, {args.precision} products\n\n{table}\n")
    print(table)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recur", default=os.path.join(ROOT, "build", "recur"))
    p.add_argument("--out", default="runs/lm_compare", help="run folders (checkpoints, logs)")
    p.add_argument("--docs", default="docs/results/lm_compare", help="where report.md and results.csv go")
    p.add_argument("--runs", default=",".join(RUNS), help="comma-separated subset of: " + ", ".join(RUNS))
    p.add_argument("--budget", type=float, default=3e13, help="training FLOPs per run")
    p.add_argument("--steps", type=int, default=0,
                   help="equal-steps control: every run trains this many steps (equal tokens) instead of --budget")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup_steps", type=int, default=30)
    p.add_argument("--eval_batches", type=int, default=32, help="validation batches of batch_size x 256 bytes")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--precision", choices=["f32", "bf16"], default="f32",
                   help="matrix products (docs/precision.md); runs trained earlier keep theirs")
    p.add_argument("--threads", type=int, default=1, help="threads per process (per rank with --mpi_ranks)")
    p.add_argument("--mpi_ranks", type=int, default=1, help="train each run as this many MPI ranks (mpirun -np)")
    p.add_argument("--mpirun", default="mpirun", help="the mpirun command and its own flags, e.g. "
                   "\"mpirun --hostfile hosts\" (with --mpi_ranks)")
    p.add_argument("--data", default="", help="a shard folder (recur data prepare) instead of the built-in corpus")
    p.add_argument("--fewshot", action="append", default=[], help="a harness task JSONL scored on each final model")
    p.add_argument("--max_items", type=int, default=0, help="--fewshot: items per task (0: all)")
    p.add_argument("--report_only", action="store_true", help="only rewrite the tables from finished runs")
    args = p.parse_args()
    if args.steps < 0:
        sys.exit("lm_compare: --steps must be >= 1 (or 0 for the equal-FLOPs --budget)")
    names = [n for n in args.runs.split(",") if n]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        sys.exit(f"lm_compare: unknown run(s) {unknown}; choose from {list(RUNS)}")
    if not args.report_only:
        for name in names:
            run_dir = os.path.join(args.out, name)
            if os.path.exists(os.path.join(run_dir, "result.json")):  # finished earlier
                if (args.data or args.fewshot) and not os.path.exists(os.path.join(run_dir, "eval.json")):
                    evaluate_final(args, run_dir)
                continue
            r = train_one(args, name, run_dir)
            print(f"{name}: val NLL {r['val_nll']:.4f} after {r['steps']} steps, {r['train_seconds']:.0f} s", flush=True)
    results = [summarize(args, name, os.path.join(args.out, name)) for name in RUNS
               if os.path.exists(os.path.join(args.out, name, "result.json"))]
    if results:
        write_report(args, results)


if __name__ == "__main__":
    main()
