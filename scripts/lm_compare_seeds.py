#!/usr/bin/env python3
"""Mean ± s.e. over seeds of scripts/lm_compare.py tables (docs/mor.md): each --inputs folder holds one seed's
results.csv (the same runs at another --seed); a model's cells are averaged over the seeds that have it, with the
rule of the LM study (scripts/lm_study_analysis.py seed_score: the larger of the s.e. over seeds and the items' s.e.
of the mean) for harness scores and the s.e. over seeds for validation NLL and bits per byte.

Usage: lm_compare_seeds.py --inputs docs/results/A docs/results/B ... [--out report.md]
"""
import argparse
import csv
import os

from lm_study_analysis import mean_se, seed_score

FIXED = ["name", "sharing", "N_r", "routing", "kv_sharing", "params", "train_flops", "tokens", "steps",
         "train_seconds", "val_nll", "val_nll_causal", "active_fractions", "active_fractions_causal", "val bits/byte"]


def score_cell(text):
    """'12.5 ± 2.3' (percent) -> (0.125, 0.023)."""
    mean, se = text.split("±")
    return float(mean) / 100, float(se) / 100


def read_tables(folders):
    """model name -> [its row of each folder's results.csv that has it], in folder order; and the task columns."""
    rows, tasks = {}, []
    for folder in folders:
        with open(os.path.join(folder, "results.csv")) as f:
            reader = csv.DictReader(f)
            tasks = tasks or [c for c in reader.fieldnames if c not in FIXED]
            for row in reader:
                rows.setdefault(row["name"], []).append(row)
    return rows, tasks


def seed_table(rows, tasks):
    """The markdown table: one line per model with its seed count, tokens and steps (of the first seed), val NLL,
    bits per byte and every task as mean ± s.e."""
    head = ["model", "seeds", "tokens", "steps", "val NLL", "val bits/byte"] + tasks
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, seeds in rows.items():
        nll = mean_se([float(r["val_nll"]) for r in seeds])
        bpb = mean_se([float(r["val bits/byte"]) for r in seeds]) if seeds[0].get("val bits/byte") else None
        cells = [name, str(len(seeds)), seeds[0]["tokens"], seeds[0]["steps"], f"{nll[0]:.4f} ± {nll[1]:.4f}",
                 f"{bpb[0]:.4f} ± {bpb[1]:.4f}" if bpb else "-"]
        for task in tasks:
            mean, se = seed_score([score_cell(r[task]) for r in seeds])
            cells.append(f"{100 * mean:.1f} ± {100 * se:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", nargs="+", required=True, help="folders with one seed's results.csv each")
    p.add_argument("--out", default="", help="also write the table here")
    args = p.parse_args()
    rows, tasks = read_tables(args.inputs)
    table = f"Seeds from: {', '.join(args.inputs)}\n\n" + seed_table(rows, tasks) + "\n"
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
