#!/usr/bin/env python3
"""Data-parallel training against threads on one machine (docs/distributed.md, "Cost"); standard library only.

For cfg S and M (the shapes of `recur bench train`, tools/bench_train.cpp) it trains a few steps of batch 8 x 256
bytes on the built-in corpus twice: one process of 2 threads (`recur --threads 2 train`) and 2 MPI ranks of one
thread each (`mpirun -np 2 recur --threads 1 train`), the same global batch. From each run's metrics.jsonl it
prints the median seconds per step (the first step, which warms up, left out) and, for the ranks, the median wall
time of the gradient all-reduce (`reduce_seconds`: it includes waiting for the slower rank) and its share of the
step. Run it on a quiet machine; one markdown table.

Usage: python3 bench/bench_mpi.py [--recur build/recur] [--configs S,M] [--steps 5] [--batch_size 8]
                                  [--mpirun mpirun] [--work runs/bench_mpi]
"""
import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# `recur bench train`'s S and M as `recur train` flags
SHAPES = {
    "S": ["--d_model", "256", "--n_heads", "4", "--d_ff", "688", "--n_layers", "4"],
    "M": ["--d_model", "512", "--n_heads", "8", "--d_ff", "1376", "--n_layers", "4"],
}


def train(args, prefix, threads, shape, out):
    shutil.rmtree(out, ignore_errors=True)
    cmd = prefix + [args.recur, "--threads", str(threads), "train"] + SHAPES[shape] + [
        "--max_seq_len", "256", "--batch_size", str(args.batch_size), "--seq_len", "256", "--steps",
        str(args.steps), "--eval_every", "0", "--eval_batches", "1", "--save_every", "0", "--sample_tokens", "0",
        "--out", out]
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"bench_mpi: {' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-3000:]}")
    with open(os.path.join(out, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()][1:]  # step 1 warms up
    return statistics.median(r["seconds"] for r in rows), [r.get("reduce_seconds", 0.0) for r in rows]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recur", default=os.path.join(ROOT, "build", "recur"))
    p.add_argument("--configs", default="S,M")
    p.add_argument("--steps", type=int, default=5, help="steps per run (the first is left out)")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--mpirun", default="mpirun", help="the mpirun command and its own flags")
    p.add_argument("--work", default="runs/bench_mpi")
    args = p.parse_args()
    if args.steps < 2:
        sys.exit("bench_mpi: --steps must be >= 2 (the first step is left out)")
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    ranks = shlex.split(args.mpirun) + ["-np", "2"] + root
    print("| config | 1 process x 2 threads, s/step | 2 ranks x 1 thread, s/step | gradient all-reduce, s "
          "| all-reduce share of the step |")
    print("|---|---|---|---|---|")
    for shape in args.configs.split(","):
        threads, _ = train(args, [], 2, shape, os.path.join(args.work, shape + "_threads"))
        step, reduce = train(args, ranks, 1, shape, os.path.join(args.work, shape + "_ranks"))
        median_reduce = statistics.median(reduce)
        print(f"| {shape} | {threads:.3f} | {step:.3f} | {median_reduce:.3f} | {100 * median_reduce / step:.1f}% |",
              flush=True)


if __name__ == "__main__":
    main()
