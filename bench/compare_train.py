#!/usr/bin/env python3
# bench/compare_train.py: runs `recur bench train` and the PyTorch peer (bench/pytorch_train.py) on the same
# configs, threads and batches, and prints the side-by-side markdown table (tokens/s, GFLOP/s, % of each
# precision's matrix-product peak, speedup over PyTorch): recur f32 beside PyTorch fp32, recur bf16 beside PyTorch
# under autocast bf16.
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
    torch_script = ["/usr/bin/python3", os.path.join(HERE, "pytorch_train.py"), "--threads", str(args.threads)]
    torch_peaks = run_json(torch_script + ["--matmul_peak", "2048"])[0]
    rows = []
    for config in args.configs.split(","):
        for precision, mode in (("f32", "off"), ("bf16", "bf16")):
            ours = run_json([args.recur, "--threads", str(args.threads), "bench", "train", "--configs", config,
                             "--steps", str(args.steps), "--warmup", str(args.warmup), "--precision", precision,
                             "--json"])[0]
            torch = run_json(torch_script + ["--config", config, "--steps", str(args.steps), "--warmup",
                                             str(args.warmup), "--autocast", mode])[0]
            rows.append((config, precision, ours, torch))
    # each precision's peak: the faster of recur's product (through its GEMM seam) and PyTorch's matmul
    recur_peak = {precision: ours["peak_gflops"] for _, precision, ours, _ in rows}
    peak = {precision: max(recur_peak[precision], torch_peaks[precision + "_matmul_peak_gflops"])
            for precision in recur_peak}
    print(f"{args.threads} threads; {args.steps} timed steps after {args.warmup} warm-up. Matrix-product peaks "
          f"(2048^3, GFLOP/s): f32 recur {recur_peak['f32']:.1f}, PyTorch {torch_peaks['f32_matmul_peak_gflops']:.1f}; "
          f"bf16 recur {recur_peak['bf16']:.1f}, PyTorch {torch_peaks['bf16_matmul_peak_gflops']:.1f}\n")
    print("| config | precision | batch×seq | recur tokens/s | PyTorch | PyTorch tokens/s | speedup | recur GFLOP/s "
          "| recur % of peak | PyTorch % of peak |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for config, precision, ours, torch in rows:
        flops_per_token = ours["gflops"] / ours["tokens_per_s"]
        torch_frac = torch["tokens_per_s"] * flops_per_token / peak[precision]
        print(f"| {config} | {precision} | {ours['batch']}×{ours['seq']} "
              f"| {ours['tokens_per_s']:.0f} ± {ours['tokens_per_s_std']:.0f} "
              f"| {torch['impl']} | {torch['tokens_per_s']:.0f} ± {torch['tokens_per_s_std']:.0f} "
              f"| {ours['tokens_per_s'] / torch['tokens_per_s']:.2f}× | {ours['gflops']:.1f} "
              f"| {100 * ours['gflops'] / peak[precision]:.1f}% | {100 * torch_frac:.1f}% |")


if __name__ == "__main__":
    sys.exit(main())
