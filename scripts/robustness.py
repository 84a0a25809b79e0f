#!/usr/bin/env python3
"""Robustness survey of the release `recur` binary (issue 17's closing figures): mutates a small checkpoint, config
files and serve request files, runs recur on each, and counts outcomes. Exit 0 or 2 is handled; a signal or exit 3
(an exception that is not recur::Error) is a crash (CLI11's flag errors, 100..127, are handled); "unexpected error" in
the output, or an error (exit 2) whose message names no file (a path) and states no fix after "; ", is an unclear
message; a run
past the timeout is a hang; a resumed run that publishes weights recur then refuses as non-finite is "NaN written".
It also starts two `recur train` on one folder and counts the second writer being refused. Not run in CI.

It also tries data edge cases (empty, binary, deep or broken inputs) with `data prepare` and `train --data`,
mutated token-shard folders (a shard, the manifest or the tokenizer.model changed) with `train`, and mutated
SentencePiece model files with `data prepare`.

Usage: scripts/robustness.py [--recur build/recur] [--count 100 | --issue_scale] [--parts a,b] [--seed 1]
       [--json piece.json]; scripts/robustness.py --merge piece1.json piece2.json (the summed table)
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
    cmd = [cmd[0], "--threads", "1", *cmd[1:]]  # recur's global flag: one thread per run
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, errors="replace")
    except subprocess.TimeoutExpired:
        return "hang", ""
    out = p.stdout + p.stderr
    if p.returncode < 0 or p.returncode == 3 or not (p.returncode in (0, 2) or 100 <= p.returncode < 128):
        return "crash", out  # 100..127: CLI11's exits for a bad flag value, which print the message
    errors = [line for line in out.splitlines() if line.startswith("recur: error:")]
    if "unexpected error" in out or (p.returncode == 2 and not any("; " in line or "/" in line for line in errors)):
        return "unclear", out  # recur::Error messages name the file (a path) or state the fix after "; "
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
        cmd = [recur, "--threads", "1", "train", *MODEL, *TRAIN, "--steps", "100000", "--out", out]
        first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not os.path.exists(os.path.join(out, "metrics.jsonl")) and first.poll() is None:
            time.sleep(0.05)  # the first writer holds the lock once its run has begun
        second = subprocess.run(cmd, capture_output=True, text=True)
        first.kill()  # as a crash would: the OS releases its lock
        first.wait()
        caught += second.returncode == 2 and "in use by another recur process" in second.stderr
    return caught


def data_edge_cases(work):
    """Inputs of `recur data prepare` and `recur train --data` a user could give: (name, path)."""
    d = os.path.join(work, "edge")
    os.makedirs(os.path.join(d, "empty_folder"))
    os.makedirs(os.path.join(d, "folder_of_empty", "sub"))
    open(os.path.join(d, "folder_of_empty", "sub", "a.txt"), "wb").close()
    files = {"empty.txt": b"", "one_byte.txt": b"x", "nul_bytes.txt": b"\0" * 4096,
             "invalid_utf8.txt": bytes(range(128, 256)) * 16, "random_binary.bin": os.urandom(8192),
             "crlf_only.txt": b"\r\n" * 1000, "blank.jsonl": b"\n\n\n", "bad_line.jsonl": b'{"text": "a"}\n{"text": \n',
             "not_string.jsonl": b'{"text": 5}\n', "no_field.jsonl": b'{"body": "a"}\n',
             "deep.jsonl": b"[" * 100000 + b"\n", "long_line.jsonl": b'{"text": "' + b"a" * (1 << 20) + b'"}\n'}
    for name, data in files.items():
        open(os.path.join(d, name), "wb").write(data)
    os.makedirs(os.path.join(d, "dir.jsonl"))
    os.symlink(os.path.join(d, "loop"), os.path.join(d, "loop"))
    names = list(files) + ["empty_folder", "folder_of_empty", "dir.jsonl", "loop", "missing.txt"]
    return [(n, os.path.join(d, n)) for n in names]


def mutate_shard_folder(src, dst, rng):
    """A copy of shard folder src with one of its files (shard, manifest or tokenizer) mutated."""
    shutil.copytree(src, dst)
    name = rng.choice(sorted(os.listdir(dst)))
    target = os.path.join(dst, name)
    if rng.randrange(8) == 0:
        os.remove(target)
        os.makedirs(target)
        return
    data = open(target, "rb").read()
    if name.endswith(".bin") and rng.randrange(2) and len(data) > 64:  # a header field or a token overwritten
        at = rng.randrange(8, 48) if rng.randrange(2) else rng.randrange(64, len(data) - 1)
        data = data[:at] + bytes([rng.randrange(256), rng.randrange(256)]) + data[at + 2:]
    else:
        data = mutate_bytes(data, rng)
    open(target, "wb").write(data)


def survey_data(recur, work, counts, n_shards, n_tokenizers, rng):
    """Data edge cases x {prepare, train}, mutated shard folders x train, mutated tokenizer files x prepare."""
    cases = []
    for name, path in data_edge_cases(work):
        out = os.path.join(work, "edge_shards_" + name)
        cases.append([recur, "data", "prepare", "--input", path, "--out", out])
        cases.append([recur, "train", *MODEL, *TRAIN, "--steps", "1", "--data", path, "--out", out + "_run"])
    survey("data edge cases x {prepare, train}", cases, counts)
    text = os.path.join(work, "text.txt")
    open(text, "w").write("".join(f"In the beginning {i} God created the heaven and the earth.\n" for i in range(300)))
    model = os.path.join(work, "tokenizer.model")
    subprocess.run([recur, "--threads", "1", "tokenizer", "train", "--input", text, "--out", model, "--vocab_size", "288"],
                   check=True, capture_output=True)
    shards = os.path.join(work, "shards")
    subprocess.run([recur, "--threads", "1", "data", "prepare", "--input", text, "--tokenizer", model, "--out", shards, "--unit",
                    "paragraph", "--val_fraction", "0.2", "--shard_tokens", "2000"], check=True, capture_output=True)
    cases = []
    for i in range(n_shards):
        dst = os.path.join(work, f"shards_{i}")
        mutate_shard_folder(shards, dst, rng)
        cases.append([recur, "train", *MODEL, *TRAIN, "--steps", "1", "--data", dst, "--out", dst + "_run"])
    survey("shard folders x train", cases, counts)
    cases = []
    original = open(model, "rb").read()
    for i in range(n_tokenizers):
        path = os.path.join(work, f"tokenizer_{i}.model")
        open(path, "wb").write(mutate_bytes(original, rng))
        cases.append([recur, "data", "prepare", "--input", text, "--tokenizer", path, "--out", path + "_shards"])
    survey("tokenizer files x prepare", cases, counts)


ISSUE_SCALE = {"checkpoints": 2400, "requests": 600, "configs": 300, "shards": 300, "tokenizers": 150, "writers": 15}


def survey_checkpoints(recur, work, base, n, counts, rng):
    checkpoints, resumed = [], []
    for i in range(n):
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
    counts["NaN written"] = nan_written(recur, resumed)


def survey_configs(recur, work, n, counts, rng):
    config = json.dumps({"d_model": 32, "n_heads": 2, "n_layers": 2, "d_ff": 64, "max_seq_len": 64}).encode()
    cases = []
    for i in range(n):
        path = os.path.join(work, f"config_{i}.json")
        open(path, "wb").write(mutate_bytes(config, rng))
        cases.append([recur, "train", "--config", path, *TRAIN, "--steps", "1", "--out", os.path.join(work, f"c{i}")])
    survey("configs x train", cases, counts)


def survey_requests(recur, work, base, n, counts, rng):
    request = b'{"prompt": "And God said", "max_new_tokens": 3, "id": "first"}\n{"prompt": "x", "id": 2}\n'
    cases = []
    for i in range(n):
        path = os.path.join(work, f"requests_{i}.jsonl")
        open(path, "wb").write(mutate_bytes(request, rng))
        cases.append([recur, "serve", "--checkpoint", base, "--requests", path, "--temperature", "0"])
    survey("request files x serve", cases, counts)


def print_table(counts):
    print("| inputs x command | tried | handled | crashes | hangs | unclear messages |")
    print("|---|---|---|---|---|---|")
    for name, c in counts.items():
        if isinstance(c, dict):
            print(f"| {name} | {c['tried']} | {c['handled']} | {c['crash']} | {c['hang']} | {c['unclear']} |")
    for key in ("NaN written", "concurrent writers caught", "concurrent writer trials"):
        if key in counts:
            print(f"\n{key}: {counts[key]}")


def merge(paths):
    """The counts of several --json pieces summed."""
    total = {}
    for path in paths:
        for name, c in json.load(open(path)).items():
            if isinstance(c, dict):
                row = total.setdefault(name, dict.fromkeys(c, 0))
                for k, v in c.items():
                    row[k] += v
            else:
                total[name] = total.get(name, 0) + c
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recur", default="build/recur")
    ap.add_argument("--count", type=int, default=100, help="mutations of each kind (unless --issue_scale)")
    ap.add_argument("--issue_scale", action="store_true", help="the counts of issue 17: " + json.dumps(ISSUE_SCALE))
    ap.add_argument("--parts", default="checkpoints,configs,requests,data,writers",
                    help="comma-separated parts to run (pieces of a survey; --merge sums them)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="also write the counts to this file")
    ap.add_argument("--merge", nargs="+", help="print the summed table of these --json files and exit")
    args = ap.parse_args()
    if args.merge:
        print_table(merge(args.merge))
        return
    n = ISSUE_SCALE if args.issue_scale else {k: args.count for k in ISSUE_SCALE} | {"writers": args.count // 20 + 1}
    parts = args.parts.split(",")
    recur, rng = os.path.abspath(args.recur), random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="recur_robustness_")
    base = os.path.join(work, "base")
    subprocess.run([recur, "--threads", "1", "train", *MODEL, *TRAIN, "--steps", "2", "--save_every", "1", "--out", base],
                   check=True, capture_output=True)
    os.remove(os.path.join(base, "lock"))
    counts = {}
    if "checkpoints" in parts:
        survey_checkpoints(recur, work, base, n["checkpoints"], counts, rng)
    if "configs" in parts:
        survey_configs(recur, work, n["configs"], counts, rng)
    if "requests" in parts:
        survey_requests(recur, work, base, n["requests"], counts, rng)
    if "data" in parts:
        survey_data(recur, work, counts, n["shards"], n["tokenizers"], rng)
    if "writers" in parts:
        counts["concurrent writer trials"] = n["writers"]
        counts["concurrent writers caught"] = concurrent_writers(recur, work, n["writers"])
    print_table(counts)
    if args.json:
        json.dump(counts, open(args.json, "w"), indent=1)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
