#!/usr/bin/env python3
"""Robustness survey of the release `recur` binary (issue 17's closing figures): mutates a small checkpoint, config
files and serve request files, runs recur on each, and counts outcomes. Exit 0 or 2 is handled; a signal or exit 3
(an exception that is not recur::Error) is a crash (CLI11's flag errors, 100..127, are handled); "unexpected error" in the output is an unclear message; a run
past the timeout is a hang; a resumed run that publishes weights recur then refuses as non-finite is "NaN written".
It also starts two `recur train` on one folder and counts the second writer being refused. Not run in CI.

Usage: scripts/robustness.py [--recur build/recur] [--count 100] [--seed 1]
"""
import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import tempfile
import time

MODEL = ["--d_model", "32", "--n_heads", "2", "--n_layers", "2", "--d_ff", "64", "--max_seq_len", "64"]
TRAIN = ["--batch_size", "2", "--seq_len", "32", "--sample_tokens", "0", "--eval_batches", "1"]


def run(cmd, timeout=60):
    """(outcome, output) of one command: handled, crash, unclear or hang."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, errors="replace")
    except subprocess.TimeoutExpired:
        return "hang", ""
    out = p.stdout + p.stderr
    if p.returncode < 0 or p.returncode == 3 or not (p.returncode in (0, 2) or 100 <= p.returncode < 128):
        return "crash", out  # 100..127: CLI11's exits for a bad flag value, which print the message
    if "unexpected error" in out:
        return "unclear", out
    return "handled", out


def mutate_bytes(data, rng):
    data = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0 and data:  # flip bits
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncate
        del data[rng.randrange(len(data) + 1):]
    elif kind == 2:  # NUL byte
        data.insert(rng.randrange(len(data) + 1), 0)
    elif kind == 3:  # deep nesting at a random place
        at = rng.randrange(len(data) + 1)
        data[at:at] = b"[" * 100000
    elif kind == 4:  # a huge or non-finite number
        at = rng.randrange(len(data) + 1)
        data[at:at] = rng.choice([b"1e999", b"4294967360", b"-1", b"NaN", b"9" * 40])
    else:  # garbage appended
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return bytes(data)


def poison_tensor(data, rng):
    """A NaN, Inf or negative float written into the tensor data of a safetensors file."""
    header_len = struct.unpack("<Q", data[:8])[0]
    start = 8 + header_len
    if len(data) - start < 4:
        return data
    at = start + 4 * rng.randrange((len(data) - start) // 4)
    value = rng.choice([float("nan"), float("inf"), -1.0])
    return data[:at] + struct.pack("<f", value) + data[at + 4:]


def mutate_checkpoint(src, dst, rng):
    shutil.copytree(src, dst)
    step = open(os.path.join(dst, "latest")).read().strip()
    files = ["latest"] + [os.path.join(step, f) for f in
                          ("model.safetensors", "optimizer.safetensors", "config.json", "train_state.json")]
    target = os.path.join(dst, rng.choice(files))
    choice = rng.randrange(10)
    if choice == 0:  # a directory where a file is expected
        os.remove(target)
        os.makedirs(target)
        return
    data = open(target, "rb").read()
    if choice <= 3 and target.endswith(".safetensors"):
        data = poison_tensor(data, rng)
    else:
        data = mutate_bytes(data, rng)
    open(target, "wb").write(data)


def survey(name, cases, counts):
    counts[name] = {"tried": 0, "handled": 0, "crash": 0, "unclear": 0, "hang": 0}
    for cmd in cases:
        outcome, out = run(cmd)
        counts[name]["tried"] += 1
        counts[name][outcome] += 1
        if outcome != "handled":
            print(f"{name}: {outcome}: {' '.join(cmd)}\n{out[-400:]}")


def nan_written(recur, out_dirs):
    """Resumed runs that published a checkpoint recur itself refuses as non-finite."""
    bad = 0
    for out in out_dirs:
        if os.path.exists(os.path.join(out, "latest")):
            _, text = run([recur, "sample", "--checkpoint", out, "--max_new_tokens", "1"])
            bad += "non-finite" in text
    return bad


def concurrent_writers(recur, work, trials):
    caught = 0
    for i in range(trials):
        out = os.path.join(work, f"two_{i}")
        cmd = [recur, "train", *MODEL, *TRAIN, "--steps", "100000", "--out", out]
        first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not os.path.exists(os.path.join(out, "metrics.jsonl")) and first.poll() is None:
            time.sleep(0.05)  # the first writer holds the lock once its run has begun
        second = subprocess.run(cmd, capture_output=True, text=True)
        first.kill()  # as a crash would: the OS releases its lock
        first.wait()
        caught += second.returncode == 2 and "in use by another recur process" in second.stderr
    return caught


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recur", default="build/recur")
    ap.add_argument("--count", type=int, default=100, help="mutations of each kind")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    recur, rng = os.path.abspath(args.recur), random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="recur_robustness_")
    base = os.path.join(work, "base")
    subprocess.run([recur, "train", *MODEL, *TRAIN, "--steps", "2", "--save_every", "1", "--out", base],
                   check=True, capture_output=True)
    os.remove(os.path.join(base, "lock"))
    counts, resumed = {}, []
    checkpoints = []
    for i in range(args.count):
        dst = os.path.join(work, f"ckpt_{i}")
        mutate_checkpoint(base, dst, rng)
        checkpoints.append(dst)
    survey("checkpoints x sample", [[recur, "sample", "--checkpoint", c, "--max_new_tokens", "2"] for c in checkpoints],
           counts)
    cases = []
    for c in checkpoints:
        resumed.append(c + "_resumed")
        cases.append([recur, "train", *MODEL, *TRAIN, "--steps", "3", "--resume", c, "--out", resumed[-1]])
    survey("checkpoints x resume", cases, counts)
    config = json.dumps({"d_model": 32, "n_heads": 2, "n_layers": 2, "d_ff": 64, "max_seq_len": 64}).encode()
    cases = []
    for i in range(args.count):
        path = os.path.join(work, f"config_{i}.json")
        open(path, "wb").write(mutate_bytes(config, rng))
        cases.append([recur, "train", "--config", path, *TRAIN, "--steps", "1", "--out", os.path.join(work, f"c{i}")])
    survey("configs x train", cases, counts)
    request = b'{"prompt": "And God said", "max_new_tokens": 3, "id": "first"}\n{"prompt": "x", "id": 2}\n'
    cases = []
    for i in range(args.count):
        path = os.path.join(work, f"requests_{i}.jsonl")
        open(path, "wb").write(mutate_bytes(request, rng))
        cases.append([recur, "serve", "--checkpoint", base, "--requests", path, "--temperature", "0"])
    survey("request files x serve", cases, counts)
    for name, c in counts.items():
        print(f"{name}: {c['tried']} tried, {c['handled']} handled, {c['crash']} crashes, {c['hang']} hangs, "
              f"{c['unclear']} unclear messages")
    print(f"NaN written: {nan_written(recur, resumed)}")
    trials = max(1, args.count // 20)
    print(f"concurrent writers caught: {concurrent_writers(recur, work, trials)} of {trials}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
