# tests/harness_parity.py: `recur eval --fewshot` scored against the PyTorch reference (reference/model.py) on the
# same checkpoint: every multiple-choice log-likelihood within 1e-4 relative (float32 against float64 sums), and
# every greedy generation (full forward, argmax step by step) the same text, for a byte-level checkpoint, 0 shots.
# Usage: harness_parity.py RECUR CHECKPOINT_DIR OUT_DIR TASK.jsonl...
import json
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from model import Model, load_config  # noqa: E402
from safetensors_io import load_file  # noqa: E402

MAX_GEN_TOKENS = 32  # recur eval's default --max_gen_tokens
EOS = 0  # the byte-level end-of-text token


def load_model(run):
    step = os.path.join(run, open(os.path.join(run, "latest")).read().strip())
    model = Model(load_config(os.path.join(step, "config.json"))).double()
    weights, _ = load_file(os.path.join(step, "model.safetensors"))
    tensors = model.named_tensors()
    assert set(weights) == set(tensors), f"weights differ: {sorted(set(weights) ^ set(tensors))}"
    with torch.no_grad():
        for name, t in tensors.items():
            t.copy_(weights[name].double())
    return model.eval()


def continuation_loglik(model, prompt, choice):
    seq = (prompt + choice)[-(model.cfg["max_seq_len"] + 1):]
    logits = model(torch.tensor([seq[:-1]]))[0][0]
    logp = torch.log_softmax(logits, dim=-1)
    first = len(seq) - 1 - len(choice)
    return sum(logp[first + j, seq[first + j + 1]].item() for j in range(len(choice)))


def greedy_until(model, prompt, until):
    window = model.cfg["max_seq_len"]
    prompt = prompt[-window:]
    out = b""
    tokens = list(prompt)
    for _ in range(min(MAX_GEN_TOKENS, window + 1 - len(prompt))):
        token = int(model(torch.tensor([tokens[-window:]]))[0][0, -1].argmax())
        if token == EOS:
            break
        tokens.append(token)
        out += bytes([token])
        cuts = [out.find(u) for u in until if out.find(u) >= 0]
        if cuts:
            return out[:min(cuts)]
    return out


def main():
    recur, run, out_dir, tasks = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    os.makedirs(out_dir, exist_ok=True)
    per_item = os.path.join(out_dir, "harness_parity_items.jsonl")
    cmd = [recur, "--threads", "1", "eval", "--checkpoint", run, "--per_item", per_item, "--json"]
    for t in tasks:
        cmd += ["--fewshot", t]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    model = load_model(run)
    items = {os.path.splitext(os.path.basename(t))[0]: [json.loads(l) for l in open(t) if l.strip()] for t in tasks}
    checked = 0
    with torch.no_grad():
        for line in open(per_item):
            r = json.loads(line)
            item = items[r["task"]][r["index"]]
            prompt = list(item["context"].encode())
            if "choices" in item:
                for c, ours in enumerate(r["loglik"]):
                    ref = continuation_loglik(model, prompt, list(item["choices"][c].encode()))
                    assert abs(ours - ref) <= 1e-4 * max(1.0, abs(ref)), f"{r['task']} {r['index']} choice {c}: {ours} vs {ref}"
            else:
                until = [u.encode() for u in item.get("until", ["\n"])]
                ref = greedy_until(model, prompt, until)
                ours = bytes.fromhex(r["output_hex"])
                assert ours == ref, f"{r['task']} {r['index']}: recur {ours!r}, reference {ref!r}"
                assert r["correct"] == (ref.strip(b" \t\n\r\f\v") == item["target"].encode().strip(b" \t\n\r\f\v"))
            checked += 1
    assert checked == sum(len(v) for v in items.values()), f"recur scored {checked} items"
    print(f"harness parity: {checked} items of {len(tasks)} tasks agree with the PyTorch reference")


if __name__ == "__main__":
    main()
