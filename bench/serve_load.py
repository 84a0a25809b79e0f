#!/usr/bin/env python3
"""Load benchmark of `recur server` (python3 standard library only): for each checkpoint, starts the server on a
free loopback port, sends --requests streamed completions from --clients concurrent clients, and reports
requests/s, generated tokens/s, time to first token p50/p99 and inter-token latency p50/p99 (from the arrival
times of the server-sent events; one event per token batch). See README.md, "Server".

Usage: bench/serve_load.py --recur build/recur --checkpoints runs/vanilla runs/mor [--requests 200 --clients 32
       --prompt_len 32 --max_tokens 32 --max_batch 16] [--json]
"""
import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import threading
import time


def start_server(recur, checkpoint, max_batch):
    proc = subprocess.Popen([recur, "server", "--checkpoint", checkpoint, "--host", "127.0.0.1", "--port", "0",
                             "--max_batch", str(max_batch), "--max_queue", "100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not match:
        proc.kill()
        sys.exit(f"serve_load: {checkpoint}: the server did not start ({line.strip()})")
    return proc, int(match.group(1))


def one_request(port, body):
    """Streams one completion; returns (start, [arrival time of each token-bearing event], tokens)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"status {response.status}: {response.read()[:200]}")
    arrivals, tokens = [], 0
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk["choices"][0]["text"]:
            arrivals.append(time.perf_counter())
        if "usage" in chunk:
            tokens = chunk["usage"]["completion_tokens"]
    conn.close()
    return start, arrivals, tokens


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def run_load(port, args):
    prompt = ("In the beginning God created the heaven and the earth. " * 8)[:args.prompt_len]
    results, errors, lock, next_index = [], [], threading.Lock(), [0]

    def client():
        while True:
            with lock:
                if next_index[0] >= args.requests:
                    return
                i = next_index[0]
                next_index[0] += 1
            body = {"prompt": prompt, "max_tokens": args.max_tokens, "temperature": 0.8, "seed": i, "stream": True}
            try:
                results.append(one_request(port, body))
            except Exception as e:  # reported, and the run fails
                errors.append(str(e))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    ttft = [arrivals[0] - start for start, arrivals, _ in results if arrivals]
    itl = [b - a for _, arrivals, _ in results for a, b in zip(arrivals, arrivals[1:])]
    tokens = sum(n for _, _, n in results)
    return {"requests": len(results), "errors": len(errors), "seconds": round(seconds, 3),
            "requests_per_s": round(len(results) / seconds, 2), "tokens_per_s": round(tokens / seconds, 1),
            "ttft_p50_ms": round(1000 * percentile(ttft, 50), 2), "ttft_p99_ms": round(1000 * percentile(ttft, 99), 2),
            "itl_p50_ms": round(1000 * percentile(itl, 50), 2), "itl_p99_ms": round(1000 * percentile(itl, 99), 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recur", default="build/recur")
    parser.add_argument("--checkpoints", nargs="+", required=True)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--prompt_len", type=int, default=32)
    parser.add_argument("--max_tokens", type=int, default=32)
    parser.add_argument("--max_batch", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = parser.parse_args()
    rows = []
    for checkpoint in args.checkpoints:
        proc, port = start_server(args.recur, checkpoint, args.max_batch)
        try:
            rows.append({"checkpoint": checkpoint, **run_load(port, args)})
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print("| checkpoint | requests/s | tokens/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | errors |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['checkpoint']} | {r['requests_per_s']} | {r['tokens_per_s']} | {r['ttft_p50_ms']} | "
                  f"{r['ttft_p99_ms']} | {r['itl_p50_ms']} | {r['itl_p99_ms']} | {r['errors']} |")
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
