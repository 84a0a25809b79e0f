#!/usr/bin/env bash
# Behaviour check for refactors: trains small models of every family with two recur binaries (one thread,
# same seeds) and compares their metrics (timings aside), final weights (tensor by tensor: names, dtypes, shapes and
# bytes, so metadata such as the per-tensor checksums an older binary did not write does not count), samples and
# `recur serve` output.
# Usage: scripts/compare_builds.sh OLD_RECUR NEW_RECUR [WORK_DIR]; exits 1 on any difference.
set -uo pipefail
old=$1 new=$2 work=${3:-$(mktemp -d)}
mkdir -p "$work" && cd "$work" || exit 2
common=(--d_model 64 --n_heads 4 --d_ff 128 --max_seq_len 64 --seq_len 64 --batch_size 4 --steps 12 --eval_every 6
        --log_every 100 --warmup_steps 2 --sample_tokens 40)
families=(
  "plain|--n_layers 2"
  "mor_expert|--sharing middle_cycle --n_layers 5 --n_recursions 3 --mor_routing expert"
  "mor_token_kv|--sharing cycle --n_layers 3 --n_recursions 3 --mor_routing token --mor_kv_sharing true --mor_bias_rate 0.001"
  "loop_concat|--n_layers 6 --prelude 1 --loop_block 2 --loop_count 2 --coda 1 --input_injection concat"
  "regularized|--n_layers 4 --loop_reg_k 2 --loop_reg_lambda 1")
for i in $(seq 1 12); do echo "{\"prompt\": \"And God said $i\", \"max_new_tokens\": $((5 + i * 3))}"; done > requests.jsonl
status=0
same() { if cmp -s "$2" "$3"; then echo "  $1 identical"; else echo "  $1 DIFFER"; status=1; fi; }
# The tensors of a safetensors file (8-byte little-endian header length, JSON header, data), one line per tensor:
# name, dtype, shape and the SHA-256 of its bytes.
tensors() {
  python3 - "$1" << 'PY'
import hashlib, json, struct, sys
with open(sys.argv[1], "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(n))
    data = f.read()
for name in sorted(k for k in header if k != "__metadata__"):
    t = header[name]
    begin, end = t["data_offsets"]
    print(name, t["dtype"], t["shape"], hashlib.sha256(data[begin:end]).hexdigest())
PY
}
for family in "${families[@]}"; do
  name=${family%%|*}
  read -r -a args <<< "${family#*|}"
  echo "$name"
  for side in old new; do
    bin=${!side}
    rm -rf "$side.$name"
    OMP_NUM_THREADS=1 "$bin" --threads 1 train --out "$side.$name" "${common[@]}" "${args[@]}" > "$side.$name.log" 2>&1
    sed -E 's/"(tokens_per_s|seconds)":[^,}]*,?//g' "$side.$name/metrics.jsonl" > "$side.$name.metrics"
    OMP_NUM_THREADS=1 "$bin" --threads 1 serve --checkpoint "$side.$name" --requests requests.jsonl --max_batch 4 \
      > "$side.$name.serve" 2>/dev/null
    tail -1 "$side.$name.log" > "$side.$name.sample"
  done
  same metrics "old.$name.metrics" "new.$name.metrics"
  for side in old new; do
    tensors "$side.$name/step_00000012/model.safetensors" > "$side.$name.tensors" || { echo "  $side weights unreadable"; status=1; }
  done
  same weights "old.$name.tensors" "new.$name.tensors"
  same sample "old.$name.sample" "new.$name.sample"
  same serve "old.$name.serve" "new.$name.serve"
done
exit $status
