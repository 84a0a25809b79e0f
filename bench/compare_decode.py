#!/usr/bin/env python3
"""recur's decoder beside llama.cpp on the very same weights (standard library only).

For each model (S, M, L: the shapes of `recur bench decode`'s presets, random weights from a 1-step `recur train`,
since recur writes checkpoints only by training), the checkpoint is exported with `recur export --format gguf`, then
`recur bench decode --json` and llama.cpp's llama-bench measure prompt processing (pp) and token generation (tg)
at batch 1 with the same thread count; a 16-sequence row (8 layers, d256) compares `recur bench decode --batch 16`
with llama.cpp's llama-batched-bench. llama-bench and llama-batched-bench come from bench/llama_tools.py (built once,
natively, from the llama.cpp source that node-llama-cpp bundles, into build-llama/). Prints one markdown table.

Usage: python3 bench/compare_decode.py [--recur build/recur] [--models S,M,L] [--pp 256 --tg 128] [--reps 3]
                                       [--threads 2] [--no-batched] [--work runs/compare_decode]
                                       [--llama_bin DIR]
"""
import argparse
import json
import os
import sys

from llama_tools import ROOT, llama_tools, run

# recur bench decode's presets (tools/bench_decode.cpp) as `recur train` flags; B16 is the 16-sequence model.
SHAPES = {
    "S": ["--d_model", "256", "--n_heads", "4", "--d_ff", "688", "--n_layers", "4"],
    "M": ["--d_model", "512", "--n_heads", "8", "--d_ff", "1376", "--n_layers", "4"],
    "L": ["--d_model", "768", "--n_heads", "12", "--d_ff", "2048", "--n_layers", "12"],
    "B16": ["--d_model", "256", "--n_heads", "4", "--d_ff", "688", "--n_layers", "8"],
}


def exported(recur, work, name):
    """A 1-step checkpoint of shape `name` (random weights for timing) and its GGUF, made once."""
    out = os.path.join(work, name)
    gguf = os.path.join(out, "model.gguf")
    if not os.path.exists(gguf):
        run([recur, "train", *SHAPES[name], "--max_seq_len", "1024", "--steps", "1", "--warmup_steps", "0",
             "--batch_size", "1", "--seq_len", "32", "--sample_tokens", "0", "--eval_every", "0", "--out", out])
        run([recur, "export", "--format", "gguf", "--checkpoint", out, "--out", gguf])
    return out, gguf


def recur_rates(recur, threads, checkpoint, pp, tg, batch, reps):
    """{"pp": tokens/s, "tg": tokens/s} from `recur bench decode --json`."""
    rows = run([recur, "--threads", str(threads), "bench", "decode", "--checkpoint", checkpoint, "--pp", str(pp),
                "--tg", str(tg), "--batch", str(batch), "--reps", str(reps), "--json"]).splitlines()
    rates = {}
    for row in map(json.loads, rows):
        rates["pp" if row["test"].startswith("pp") else "tg"] = row["tokens_per_s"]
    return rates


def llama_bench_rates(bench, threads, gguf, pp, tg, reps):
    rows = json.loads(run([bench, "-m", gguf, "-p", str(pp), "-n", str(tg), "-t", str(threads), "-r", str(reps),
                           "-o", "json"]))
    return {"pp" if row["n_prompt"] > 0 else "tg": row["avg_ts"] for row in rows}


def batched_bench_rates(batched, threads, gguf, pp, tg, sequences):
    cmd = [batched, "-m", gguf, "-c", str(2 * sequences * (pp + tg)), "-b", "2048", "-ub", "512", "-npp", str(pp),
           "-ntg", str(tg), "-npl", str(sequences), "-t", str(threads), "--output-format", "jsonl"]
    # llama.cpp prints through a logging thread, and a run has been seen to exit 0 before its JSON line was
    # written, so a run without one is repeated (at most three runs).
    for _ in range(3):
        lines = [line for line in run(cmd).splitlines() if line.startswith("{")]
        if lines:
            row = json.loads(lines[-1])
            return {"pp": row["speed_pp"], "tg": row["speed_tg"]}
    sys.exit(f"compare_decode.py: {' '.join(cmd)} printed no JSON result in three runs")


def table_row(label, ours, theirs):
    cells = [label]
    for test in ("pp", "tg"):
        cells += [f"{ours[test]:.0f}", f"{theirs[test]:.0f}", f"{ours[test] / theirs[test]:.2f}x"]
    return "| " + " | ".join(cells) + " |"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recur", default=os.path.join(ROOT, "build", "recur"))
    ap.add_argument("--models", default="S,M,L")
    ap.add_argument("--pp", type=int, default=256)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-batched", action="store_true", help="skip the 16-sequence row")
    ap.add_argument("--work", default=os.path.join(ROOT, "runs", "compare_decode"))
    ap.add_argument("--llama_bin", help="a folder holding llama-bench and llama-batched-bench already built "
                    "(default: build them from node-llama-cpp's bundled source into build-llama/)")
    args = ap.parse_args()
    # Both engines run at OpenMP's default wait policy unless the caller sets OMP_WAIT_POLICY (it applies to both).
    # Forcing "passive" puts every thread to sleep at each barrier: llama.cpp's CPU backend meets an OpenMP barrier
    # after every graph node, so its decoding falls to about half (M: 302 against 600 tok/s on the AVX512-BF16 EPYC).
    wait_policy = os.environ.get("OMP_WAIT_POLICY", "default")
    bench, batched = llama_tools(["llama-bench", "llama-batched-bench"], args.llama_bin)
    rows = []
    for name in args.models.split(","):
        checkpoint, gguf = exported(args.recur, args.work, name)
        ours = recur_rates(args.recur, args.threads, checkpoint, args.pp, args.tg, 1, args.reps)
        theirs = llama_bench_rates(bench, args.threads, gguf, args.pp, args.tg, args.reps)
        rows.append(table_row(name, ours, theirs))
        print(rows[-1], file=sys.stderr, flush=True)  # a later failure does not lose the rows measured
    if not args.no_batched:
        checkpoint, gguf = exported(args.recur, args.work, "B16")
        ours = recur_rates(args.recur, args.threads, checkpoint, 64, 64, 16, args.reps)
        theirs = batched_bench_rates(batched, args.threads, gguf, 64, 64, 16)
        rows.append(table_row("16 sequences (d256, 8 layers, pp64 + tg64)", ours, theirs))
    print(f"\nf32, {args.threads} threads each, OMP_WAIT_POLICY {wait_policy}; batch 1: pp{args.pp} and tg{args.tg} "
          f"(recur bench decode, llama-bench), 16 sequences: recur bench decode --batch 16, llama-batched-bench\n")
    print("| model | recur pp tok/s | llama.cpp pp | ratio | recur tg tok/s | llama.cpp tg | ratio |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
