# bench/pytorch_train.py: the PyTorch peer for recur's training benchmark. Trains reference/model.py (same model,
# same explicit attention) with AdamW on random byte tokens and prints one JSON line of throughput. With
# --autocast bf16 the forward and the loss run under torch.autocast("cpu", dtype=torch.bfloat16) (matrix products
# in bf16, fp32 master weights), as a user training on a bf16-capable CPU would run it.
# (attention, routers and the loss stay fp32: reference/model.py fp32_region). --matmul_peak N instead prints the
# best GFLOP/s of an N×N×N torch.matmul in fp32 and in bf16, PyTorch's own peaks on this CPU.
# Usage: /usr/bin/python3 bench/pytorch_train.py --config S [--batch 16 --seq 256 --threads 2 --steps 10 --warmup 2]
#        [--autocast bf16] | --matmul_peak 2048 [--threads 2]
import argparse
import contextlib
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from model import Model, clip_grad_norm, configure_optimizer, init_weights, make_config  # noqa: E402

PRESETS = {  # name -> (model config, batch, seq)
    "S": (dict(vocab_size=256, d_model=256, n_heads=4, n_kv_heads=4, d_ff=688, n_layers=4), 16, 256),
    "M": (dict(vocab_size=256, d_model=512, n_heads=8, n_kv_heads=8, d_ff=1376, n_layers=4), 8, 256),
}


def autocast(mode):
    if mode == "off":
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16)


def matmul_peaks(n, repeats=5):
    peaks = {}
    for name, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.full((n, n), 0.5, dtype=dtype), torch.full((n, n), 0.25, dtype=dtype)
        best = 0.0
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            torch.matmul(a, b)
            best = max(best, 2.0 * n ** 3 / (time.perf_counter() - t0) / 1e9)
        peaks[name + "_matmul_peak_gflops"] = best
    return peaks


def main():
    parser = argparse.ArgumentParser(description="PyTorch training throughput for the reference model")
    parser.add_argument("--config", choices=sorted(PRESETS), default="S")
    parser.add_argument("--batch", type=int, help="override the preset batch size")
    parser.add_argument("--seq", type=int, help="override the preset sequence length")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before timing")
    parser.add_argument("--autocast", choices=["off", "bf16"], default="off", help="mixed precision of the forward")
    parser.add_argument("--matmul_peak", type=int, default=0, help="print PyTorch's N×N×N matmul peaks instead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.matmul_peak:
        print(json.dumps(dict(matmul_peaks(args.matmul_peak), threads=args.threads, torch_version=torch.__version__)))
        return

    overrides, batch, seq = PRESETS[args.config]
    batch = args.batch or batch
    seq = args.seq or seq
    cfg = make_config(**overrides, max_seq_len=seq, tied_embeddings=True)
    torch.set_num_threads(args.threads)
    model = Model(cfg)
    init_weights(model, 1234)
    opt = configure_optimizer(model, lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    gen = torch.Generator().manual_seed(0)

    step_s = []
    for step in range(args.warmup + args.steps):
        data = torch.randint(0, 256, (batch, seq + 1), generator=gen)  # outside the timed region
        x, y = data[:, :-1], data[:, 1:]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast(args.autocast):
            _, loss = model(x, y)
        loss.backward()
        clip_grad_norm(model, 1.0)
        opt.step()
        elapsed = time.perf_counter() - t0
        if step >= args.warmup:
            step_s.append(elapsed)

    tokens_per_s = [batch * seq / s for s in step_s]
    print(json.dumps({
        "impl": "pytorch" if args.autocast == "off" else "pytorch-autocast-" + args.autocast, "config": args.config, "threads": args.threads, "batch": batch, "seq": seq,
        "tokens_per_s": statistics.mean(tokens_per_s),
        "tokens_per_s_std": statistics.stdev(tokens_per_s) if len(tokens_per_s) > 1 else 0.0,
        "step_ms": 1000.0 * statistics.mean(step_s),
        "torch_version": torch.__version__,
    }))


if __name__ == "__main__":
    main()
