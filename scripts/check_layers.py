#!/usr/bin/env python3
"""Layer check (ctest `layers`): every `#include "..."` in src/, include/recur/ and tools/ must point down the
layers or sideways within one, and the folder graph must have no cycle. Prints the graph with edge counts.

Layers, lowest first: core -> kernels -> model -> {io, data, train, infer} -> {experiment, server} -> report -> tools.
A file under src/<folder>/ belongs to <folder>, a file under tools/ to tools, and a public header to the folder
that implements it (PUBLIC_HEADERS below). Folders of one layer may include each other while the graph stays
acyclic (train -> io is fine, io -> train then is not).

Usage: check_layers.py [repo_root]
"""
import os
import re
import sys

from check_common import repo_root, source_files, verdict

LAYER_RANK = {"core": 0, "kernels": 1, "model": 2, "io": 3, "data": 3, "train": 3, "infer": 3,
              "experiment": 4, "server": 4, "report": 5, "tools": 6}

# include/recur/<name>.h -> the src folder that implements it. A new public header needs a line here.
PUBLIC_HEADERS = {
    "error.h": "core", "rng.h": "core", "huge_pages.h": "core",
    "kernels.h": "kernels", "runtime.h": "kernels",
    "config.h": "model", "model.h": "model", "train_pass.h": "model", "layer.h": "model",
    "expert_choice.h": "model", "token_choice.h": "model",
    "checkpoint.h": "io", "safetensors.h": "io", "gguf.h": "io",
    "data.h": "data", "tasks.h": "data", "tokenizer.h": "data", "shards.h": "data",
    "probes.h": "data", "text_stream.h": "data",
    "train.h": "train", "task_train.h": "train", "train_checkpoint.h": "train", "run_lock.h": "train",
    "distributed.h": "train", "eval.h": "train",
    "sample.h": "infer", "serve.h": "infer", "decode.h": "infer", "engine.h": "infer",
    "server.h": "server",
    "experiment.h": "experiment", "harness.h": "experiment",
    "report.h": "report",
}

SCANNED_DIRS = ("src", "include/recur", "tools")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


def layer_of(root, path):
    """The folder (layer name) a repository file belongs to, or an error message."""
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    parts = rel.split("/")
    if parts[0] == "tools":
        return "tools", None
    if parts[0] == "include" and len(parts) == 3 and parts[1] == "recur":
        folder = PUBLIC_HEADERS.get(parts[2])
        if folder is None:
            return None, (f"{rel} is not in the PUBLIC_HEADERS table of scripts/check_layers.py; add it there "
                          "with the src folder that implements it")
        return folder, None
    if parts[0] == "src" and len(parts) >= 3:
        if parts[1] not in LAYER_RANK:
            return None, f"{rel}: folder src/{parts[1]} has no layer; add it to LAYER_RANK in scripts/check_layers.py"
        return parts[1], None
    return None, f"{rel} is outside src/<folder>/, include/recur/ and tools/"


def resolve(root, including_file, name):
    """The file an include names: next to the includer, then under include/, then under src/ (the build's order)."""
    for base in (os.path.dirname(including_file), os.path.join(root, "include"), os.path.join(root, "src")):
        candidate = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(candidate):
            return candidate
    if name.startswith("recur/"):  # a public header not written yet still has a layer
        return os.path.join(root, "include", name)
    return None


def find_cycle(edges):
    """One cycle of the folder graph (a list of folders, first == last), or None."""
    graph = {}
    for source, target in edges:
        if source != target:
            graph.setdefault(source, []).append(target)
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, [])):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def main():
    root = repo_root(sys.argv)
    problems, edges = [], {}  # edges: (from, to) -> [(file, included name)]
    for path in source_files(root, SCANNED_DIRS):
        source, error = layer_of(root, path)
        rel = os.path.relpath(path, root)
        if error:
            problems.append(error)
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for name in INCLUDE_RE.findall(text):
            target_path = resolve(root, path, name)
            if target_path is None:
                problems.append(f"{rel}: cannot find the file of #include \"{name}\"")
                continue
            target, error = layer_of(root, target_path)
            if error:
                problems.append(f"{rel} includes \"{name}\": {error}")
                continue
            edges.setdefault((source, target), []).append((rel, name))
            if LAYER_RANK[target] > LAYER_RANK[source]:
                problems.append(f"upward include: {rel} ({source}) includes \"{name}\" ({target}); "
                                f"{target} sits above {source}")
    print("folder graph (includes between folders):")
    for (source, target), uses in sorted(edges.items(), key=lambda e: (LAYER_RANK[e[0][0]], e[0])):
        if source != target:
            print(f"  {source:>10} -> {target:<10} {len(uses)}")
    cycle = find_cycle(edges)
    if cycle:
        steps = []
        for a, b in zip(cycle, cycle[1:]):
            file, name = edges[(a, b)][0]
            steps.append(f"{a} -> {b} (e.g. {file} includes \"{name}\")")
        problems.append("cycle between folders: " + "; ".join(steps))
    return verdict("layers", problems)


if __name__ == "__main__":
    sys.exit(main())
