"""llama.cpp's tools for the benchmarks beside llama.cpp (bench/compare_decode.py, bench/serve_load.py; standard
library only): built once, natively (GGML_NATIVE, CPU), from the llama.cpp source that the node-llama-cpp npm
package bundles (bench/llama, installed by scripts/setup.sh), into build-llama/ (not committed), or taken from a
folder of your own build (--llama_bin DIR).
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "bench", "llama")
BUNDLE = os.path.join(PACKAGE, "node_modules", "node-llama-cpp", "llama", "gitRelease.bundle")
LLAMA_DIR = os.path.join(ROOT, "build-llama")


def run(cmd, **kwargs):
    """stdout of cmd; exits naming the command and the end of its stderr when it fails."""
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"{os.path.basename(sys.argv[0])}: {' '.join(cmd)} failed ({result.returncode}):\n"
                 f"{result.stderr[-3000:]}")
    return result.stdout


def llama_tools(names, llama_bin=None):
    """Paths of llama.cpp's programs `names` (e.g. "llama-bench", "llama-server"): from llama_bin if given, else
    built from the bundled source (the source cloned again when the bundle changes, missing programs built)."""
    if llama_bin:
        tools = [os.path.join(llama_bin, name) for name in names]
        missing = [t for t in tools if not os.access(t, os.X_OK)]
        if missing:
            sys.exit(f"{os.path.basename(sys.argv[0])}: --llama_bin {llama_bin} has no {', '.join(missing)}; "
                     "build those targets there or leave out --llama_bin to build them into build-llama/")
        return tools
    if not os.path.exists(BUNDLE):
        run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PACKAGE)  # as scripts/setup.sh
    source, build = os.path.join(LLAMA_DIR, "src"), os.path.join(LLAMA_DIR, "build")
    head = run(["git", "bundle", "list-heads", BUNDLE]).split()[0]
    have = run(["git", "-C", source, "rev-parse", "HEAD"]).strip() if os.path.isdir(source) else None
    if have != head:
        print(f"llama_tools: llama.cpp {head[:12]} from node-llama-cpp's bundle into {source}", file=sys.stderr)
        run(["rm", "-rf", LLAMA_DIR])
        run(["git", "clone", "-q", BUNDLE, source])
        run(["git", "-C", source, "-c", "advice.detachedHead=false", "checkout", "-q", head])
    tools = [os.path.join(build, "bin", name) for name in names]
    missing = [name for name, tool in zip(names, tools) if not os.path.exists(tool)]
    if missing:
        print(f"llama_tools: building {', '.join(missing)} (GGML_NATIVE, a few minutes)", file=sys.stderr)
        run(["cmake", "-S", source, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON",
             "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
             "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_UI=OFF",
             "-DLLAMA_BUILD_APP=OFF"])
        run(["cmake", "--build", build, "-j", str(os.cpu_count() or 2), "--target", *missing])
    return tools
