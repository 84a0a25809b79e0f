#!/usr/bin/env python3
# bench/compare_train.py: runs `recur bench train` and the PyTorch peer (bench/pytorch_train.py) on the same
# configs, threads and batches, and prints the side-by-side markdown table (tokens/s, GFLOP/s, % of the sgemm
# peak that recur measures, speedup over PyTorch), with PyTorch both in fp32 and under autocast bf16.
# Usage: bench/compare_train.py [--recur build/recur]
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--recur", default=os.path.join(HERE, "..", "build", "recur"))
    p.add_argument("--configs", default="S,M")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args()
    rows = []
    for config in args.configs.split(","):
        ours = run_json([args.recur, "--threads", str(args.threads), "bench", "train", "--configs", config, "--steps",
                         str(args.steps), "--warmup", str(args.warmup), "--json"])[0]
        for mode in ("off", "bf16"):
            torch = run_json(["/usr/bin/python3", os.path.join(HERE, "pytorch_train.py"), "--config", config,
                              "--threads", str(args.threads), "--steps", str(args.steps), "--warmup",
                              str(args.warmup), "--autocast", mode])[0]
            rows.append((config, ours, torch))
    peak = rows[0][1]["sgemm_peak_gflops"]
    print(f"sgemm peak: {peak:.1f} GFLOP/s ({args.threads} threads); {args.steps} timed steps after {args.warmup} warm-up\n")
    print("| config | batch×seq | recur tokens/s | PyTorch | PyTorch tokens/s | speedup | recur GFLOP/s "
          "| recur % of peak | PyTorch % of peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    for config, ours, torch in rows:
        flops_per_token = ours["gflops"] / ours["tokens_per_s"]
        torch_frac = torch["tokens_per_s"] * flops_per_token / ours["sgemm_peak_gflops"]
        print(f"| {config} | {ours['batch']}×{ours['seq']} | {ours['tokens_per_s']:.0f} ± {ours['tokens_per_s_std']:.0f} "
              f"| {torch['impl']} | {torch['tokens_per_s']:.0f} ± {torch['tokens_per_s_std']:.0f} "
              f"| {ours['tokens_per_s'] / torch['tokens_per_s']:.2f}× | {ours['gflops']:.1f} "
              f"| {100 * ours['fraction_of_peak']:.1f}% | {100 * torch_frac:.1f}% |")


if __name__ == "__main__":
    sys.exit(main())
