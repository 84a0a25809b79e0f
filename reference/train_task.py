# reference/train_task.py: trains the PyTorch reference model (model.py) on task examples written by
# `recur task --format jsonl`, with recur's optimizer settings (AdamW, warm-up + cosine, clip 1.0), to check
# whether a learning difficulty belongs to the task or to the engine. Prints, every --eval_every steps, the
# answer exact-match accuracy on the test file and the accuracy on the dense targets that are not simply the
# token before the current one (for i-GSM: every target except a constant's own value, i.e. the lookups).
#
#   recur task --task igsm --task_options '{...}' --format jsonl --count 200000 > train.jsonl
#   recur task --task igsm --task_options '{...}' --format jsonl --count 512 --split test > test.jsonl
#   python3 reference/train_task.py train.jsonl test.jsonl --loops 2 --steps 2000
import argparse
import json
import random
import time

import torch

from model import Model, configure_optimizer, init_weights, lr_at, make_config


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def make_batch(examples):
    """Inputs tokens[:-1] and targets (dense targets if given, else the answer tokens), padded: (B, T) each."""
    n = max(len(e["tokens"]) for e in examples) - 1
    x = torch.zeros(len(examples), n, dtype=torch.long)
    y = torch.full((len(examples), n), -1, dtype=torch.long)
    for i, e in enumerate(examples):
        toks, begin = e["tokens"], e["answer_begin"]
        x[i, :len(toks) - 1] = torch.tensor(toks[:-1])
        if e["dense_targets"]:
            target = e["dense_targets"][:len(toks) - 1]
        else:
            target = [-1] * (begin - 1) + toks[begin:]
        y[i, :len(target)] = torch.tensor(target)
    return x, y


def evaluate(model, test, batch_size):
    """(answer exact match, accuracy on prompt targets that differ from the token before the current one)."""
    model.eval()
    exact = lookups = lookups_right = 0
    with torch.no_grad():
        for i in range(0, len(test), batch_size):
            chunk = test[i:i + batch_size]
            x, y = make_batch(chunk)
            pred = model(x)[0].argmax(-1)
            for j, e in enumerate(chunk):
                toks, begin = e["tokens"], e["answer_begin"]
                exact += all(pred[j, t - 1].item() == toks[t] for t in range(begin, len(toks)))
                for t in range(1, begin - 1):
                    if y[j, t] >= 0 and y[j, t].item() != toks[t - 1]:
                        lookups += 1
                        lookups_right += pred[j, t].item() == y[j, t].item()
    model.train()
    return exact / len(test), lookups_right / max(1, lookups)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("train")
    p.add_argument("test")
    p.add_argument("--loops", type=int, default=1, help="L of a (1xL) model: one layer applied L times")
    p.add_argument("--d_model", type=int, default=128)
    p.add_argument("--n_heads", type=int, default=4)
    p.add_argument("--d_ff", type=int, default=512)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup_steps", type=int, default=100)
    p.add_argument("--weight_decay", type=float, default=0.1)
    p.add_argument("--eval_every", type=int, default=250)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    train, test = load(a.train), load(a.test)
    vocab = 1 + max(max(e["tokens"]) for e in train + test)
    longest = max(len(e["tokens"]) for e in train + test)
    cfg = make_config(vocab_size=vocab, d_model=a.d_model, n_heads=a.n_heads, n_kv_heads=a.n_heads, d_ff=a.d_ff,
                      n_layers=a.loops, loop_block=1, loop_count=a.loops, max_seq_len=longest)
    model = Model(cfg)
    init_weights(model, a.seed)
    opt = configure_optimizer(model, a.lr, (0.9, 0.95), 1e-8, a.weight_decay)
    rng = random.Random(a.seed)
    start = time.time()
    for step in range(a.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, "cosine", a.lr, a.warmup_steps, a.steps, 0.1, 0.2)
        x, y = make_batch(rng.sample(train, a.batch_size))
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
            exact, lookup = evaluate(model, test, 64)
            print(f"step {step + 1} loss {loss.item():.4f} answer {exact:.3f} lookup targets {lookup:.3f} "
                  f"{time.time() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
