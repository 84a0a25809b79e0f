#!/usr/bin/env python3
"""Load benchmark of `recur server` beside llama.cpp's llama-server (python3 standard library only). See README.md,
"Server".

Without --checkpoints it first trains a small byte-level vanilla model and a MoR (expert choice) model with
`recur train` on the built-in corpus into --work (once; reused while the training flags stay the same). For each
checkpoint it starts `recur server` on a free loopback port, and for each one that `recur export --format gguf`
accepts (vanilla and looped models; MoR is refused) it also starts llama-server on that GGUF (llama_tools.py
builds it). Every server gets the same load: --requests streamed completions from --clients concurrent clients,
the same prompts as byte token ids, greedy, --max_tokens tokens each (llama-server with ignore_eos and no prompt
cache), --max_batch sequences at once (llama-server: --max_batch slots of the model's max_seq_len each), --threads
compute threads. A response whose usage is not exactly the prompt's and max_tokens' counts is an error. Prints
requests/s, generated tokens/s, time to first token p50/p99 and inter-token latency p50/p99 (from the arrival
times of the token-bearing server-sent events) in one table.

Usage: bench/serve_load.py [--recur build/recur] [--checkpoints DIR ...] [--requests 256 --clients 32
       --prompt_len 32 --max_tokens 64 --max_batch 16 --threads 2] [--train_steps 300] [--work build-bench]
       [--llama_bin DIR | --no_llama] [--json]
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

from llama_tools import ROOT, llama_tools, run

# The models trained without --checkpoints (byte-level, built-in corpus): the shapes of the equal-FLOPs LM
# comparison (scripts/lm_compare.py) at a short quick schedule.
BASE = ["--d_model", "256", "--n_heads", "4", "--n_kv_heads", "4", "--d_ff", "688", "--max_seq_len", "256"]
MODELS = {
    "vanilla": ["--n_layers", "8"],
    "mor_expert": ["--sharing", "middle_cycle", "--n_layers", "8", "--n_recursions", "3", "--mor_routing", "expert"],
}
TEXT = (b"In the beginning God created the heaven and the earth. And the earth was without form, and void; and "
        b"darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters. And God "
        b"said, Let there be light: and there was light. And God saw the light, that it was good: and God divided "
        b"the light from the darkness. And God called the light Day, and the darkness he called Night.")


def trained(args):
    """[(name, checkpoint)] of the default models, trained into args.work unless already there."""
    checkpoints = []
    for name, flags in MODELS.items():
        out = os.path.join(args.work, f"{name}_s{args.train_steps}")
        if not os.path.exists(os.path.join(out, "latest")):
            print(f"serve_load: training {name} ({args.train_steps} steps) into {out}", file=sys.stderr)
            run([args.recur, "--threads", str(args.threads), "train", *BASE, *flags, "--steps", str(args.train_steps),
                 "--warmup_steps", str(min(30, args.train_steps // 10)), "--batch_size", "8", "--seq_len", "128",
                 "--lr", "1e-3", "--eval_every", "0", "--sample_tokens", "0", "--out", out])
        checkpoints.append((name, out))
    return checkpoints


def exported_gguf(args, name, checkpoint):
    """The checkpoint's GGUF export in args.work, or None when recur refuses to export it (a MoR model)."""
    gguf = os.path.join(args.work, os.path.basename(os.path.normpath(name)) + ".gguf")
    result = subprocess.run([args.recur, "export", "--format", "gguf", "--checkpoint", checkpoint, "--out", gguf],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        print(f"serve_load: no llama-server row for {name}: {result.stderr.strip()}", file=sys.stderr)
        return None
    return gguf


def max_seq_len(checkpoint):
    path = os.path.join(checkpoint, "config.json")
    if not os.path.exists(path):  # a training --out folder: its latest checkpoint
        with open(os.path.join(checkpoint, "latest")) as f:
            path = os.path.join(checkpoint, f.read().strip(), "config.json")
    with open(path) as f:
        return json.load(f)["max_seq_len"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cmd, port, log_path):
    """Starts a server and waits until GET /health answers 200 (llama-server: 503 while it loads)."""
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(1200):
        if proc.poll() is not None:
            sys.exit(f"serve_load: {' '.join(cmd)} exited ({proc.returncode}); see {log_path}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    sys.exit(f"serve_load: {' '.join(cmd)} did not become healthy in 120 s; see {log_path}")


def recur_server(args, checkpoint, port):
    return [args.recur, "--threads", str(args.threads), "server", "--checkpoint", checkpoint, "--host",
            "127.0.0.1", "--port", str(port), "--max_batch", str(args.max_batch), "--max_queue", "100000",
            "--http_threads", str(args.clients + 4)]


def llama_server(args, gguf, seq_len, port):
    return [args.llama_server, "-m", gguf, "--host", "127.0.0.1", "--port", str(port), "-np", str(args.max_batch),
            "-c", str(args.max_batch * seq_len), "-t", str(args.threads), "-tb", str(args.threads), "--threads-http",
            str(args.clients + 4), "--cache-ram", "0", "--no-webui"]


def one_request(port, body):
    """Streams one completion; returns (start, [arrival time of each token-bearing event], usage)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"status {response.status}: {response.read()[:200]}")
    arrivals, usage = [], None
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("choices") and chunk["choices"][0]["text"]:
            arrivals.append(time.perf_counter())
        usage = chunk.get("usage") or usage
    conn.close()
    return start, arrivals, usage


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def prompt_tokens(i, length):
    """Request i's prompt: byte token ids of a slice of TEXT, a different slice per request."""
    offset = (37 * i) % (len(TEXT) - length)
    return list(TEXT[offset:offset + length])


def run_load(port, args, extra_fields):
    results, errors, lock, next_index = [], [], threading.Lock(), [0]

    def client():
        while True:
            with lock:
                if next_index[0] >= args.requests:
                    return
                i = next_index[0]
                next_index[0] += 1
            body = {"prompt": prompt_tokens(i, args.prompt_len), "max_tokens": args.max_tokens, "temperature": 0,
                    "stream": True, **extra_fields}
            try:
                start, arrivals, usage = one_request(port, body)
                counts = usage and (usage["prompt_tokens"], usage["completion_tokens"])
                if counts != (args.prompt_len, args.max_tokens):
                    raise RuntimeError(f"usage {usage}, not {args.prompt_len} prompt + {args.max_tokens} tokens")
                results.append((start, arrivals))
            except Exception as e:  # counted, and the run fails
                errors.append(str(e))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        print(f"serve_load: {len(errors)} errors, the first: {errors[0]}", file=sys.stderr)
    ttft = [arrivals[0] - start for start, arrivals in results if arrivals]
    itl = [b - a for _, arrivals in results for a, b in zip(arrivals, arrivals[1:])]
    return {"requests": len(results), "errors": len(errors), "seconds": round(seconds, 3),
            "requests_per_s": round(len(results) / seconds, 2),
            "tokens_per_s": round(len(results) * args.max_tokens / seconds, 1),
            "ttft_p50_ms": round(1000 * percentile(ttft, 50), 2), "ttft_p99_ms": round(1000 * percentile(ttft, 99), 2),
            "itl_p50_ms": round(1000 * percentile(itl, 50), 2), "itl_p99_ms": round(1000 * percentile(itl, 99), 2)}


def measure(args, server, name, cmd, port, extra_fields):
    log_path = os.path.join(args.work, f"{server.split()[0]}_{os.path.basename(os.path.normpath(name))}.log")
    print(f"serve_load: {server} {name}", file=sys.stderr)
    proc = start_server(cmd, port, log_path)
    try:
        return {"server": server, "model": name, **run_load(port, args, extra_fields)}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recur", default=os.path.join(ROOT, "build", "recur"))
    parser.add_argument("--checkpoints", nargs="+", help="checkpoint folders (default: train vanilla and MoR)")
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--prompt_len", type=int, default=32)
    parser.add_argument("--max_tokens", type=int, default=64)
    parser.add_argument("--max_batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="compute threads of each server (and of training)")
    parser.add_argument("--train_steps", type=int, default=300)
    parser.add_argument("--work", default=os.path.join(ROOT, "build-bench"), help="trained models and server logs")
    parser.add_argument("--llama_bin", help="a folder holding llama-server already built "
                        "(default: build it from node-llama-cpp's bundled source into build-llama/)")
    parser.add_argument("--no_llama", action="store_true", help="only recur server")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = parser.parse_args()
    if args.prompt_len < 1 or args.prompt_len >= len(TEXT):
        parser.error(f"--prompt_len must be in [1, {len(TEXT) - 1}]")
    return args


def print_rows(rows, as_json):
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    print("| server | model | requests/s | tokens/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['server']} | {r['model']} | {r['requests_per_s']} | {r['tokens_per_s']} | {r['ttft_p50_ms']} | "
              f"{r['ttft_p99_ms']} | {r['itl_p50_ms']} | {r['itl_p99_ms']} | {r['errors']} |")


def main():
    args = parse_args()
    # Both servers run at OpenMP's default wait policy unless the caller sets OMP_WAIT_POLICY: "passive" sleeps at
    # every barrier, and llama.cpp's CPU backend meets one after every graph node (bench/compare_decode.py).
    os.makedirs(args.work, exist_ok=True)
    checkpoints = [(c, c) for c in args.checkpoints] if args.checkpoints else trained(args)
    if not args.no_llama:
        args.llama_server = llama_tools(["llama-server"], args.llama_bin)[0]
    rows, ggufs = [], []
    for name, checkpoint in checkpoints:
        port = free_port()
        rows.append(measure(args, "recur server", name, recur_server(args, checkpoint, port), port, {}))
        gguf = None if args.no_llama else exported_gguf(args, name, checkpoint)
        if gguf:
            ggufs.append((name, gguf, max_seq_len(checkpoint)))
    llama_fields = {"n_predict": args.max_tokens, "ignore_eos": True, "cache_prompt": False}
    for name, gguf, seq_len in ggufs:
        port = free_port()
        rows.append(measure(args, "llama-server", name, llama_server(args, gguf, seq_len, port), port, llama_fields))
    print(f"\n{args.requests} streamed requests ({args.prompt_len} prompt + {args.max_tokens} generated tokens, "
          f"greedy) from {args.clients} clients, {args.max_batch} sequences at once, {args.threads} threads\n")
    print_rows(rows, args.json)
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
