#!/usr/bin/env bash
# ctest's checks of data-parallel training on MPI (docs/distributed.md), one case per run: 2 ranks against one
# process with the same global batch. Usage: mpi_train.sh <recur binary> <work dir> <case>
#   equal   2 ranks (all-reduce) = 1 process within the reduction-order tolerance (relative 1e-5 on each loss
#           and validation number; the validation batches split over the ranks)
#   exact   --reduce_shards 2: 2 ranks = 1 process bit for bit (losses, grad norms and the final weights)
#   resume  2 ranks stopped at step 3 and resumed = 2 ranks uninterrupted, bit for bit
#   n_to_m  2 ranks -> 1 process and 1 process -> 2 ranks at step 3 = uninterrupted, within the tolerance
#   token   token-choice MoR: 2 ranks = 1 process within the tolerance (the balancing loss from the global routing
#           counts; the MoR validation statistics too), and bit for bit with --reduce_shards 2
#   expert  the same for expert-choice MoR
#   params  a rank that trains with another --lr: the parameter check stops the job naming rank 1 and step 1
#   dies    a rank killed mid-run stops the job with a message naming it; the last checkpoint is whole
set -euo pipefail
recur=$1 work=$2 case=$3
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work" && cd "$work"
cat "$here"/../../docs/*.md "$here"/../../README.md > data.txt
# One machine, as root in CI: loopback TCP only, and the two flags OpenMPI needs for root and for 2 cores.
# scripts/two_host_mpi.sh runs the `equal` case with its own MPIRUN and interfaces.
export OMPI_MCA_btl=self,tcp OMPI_MCA_btl_tcp_if_include=${OMPI_MCA_btl_tcp_if_include:-lo}
export OMPI_MCA_oob_tcp_if_include=${OMPI_MCA_oob_tcp_if_include:-lo}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# 3 validation batches: 2 on rank 0, 1 on rank 1. The hang case uses a larger model so that the stopped rank is
# most likely computing, not communicating
width=32
[ "$case" = hangs ] && width=128
base=(--threads 1 train --data data.txt --d_model $width --n_heads 2 --n_layers 2 --d_ff $((2 * width)) --max_seq_len 64
  --batch_size 4 --seq_len 32 --grad_accum 2 --sample_tokens 0 --eval_every 3 --eval_batches 3 --warmup_steps 2
  --param_check_every 1)
args=("${base[@]}" --steps 6 --save_every 3)
one() { "$recur" "${args[@]}" "$@" > /dev/null; }
two() { timeout 50 ${MPIRUN:-mpirun -np 2} "$recur" "${args[@]}" "$@" > /dev/null; }
# compare <run a> <run b> <relative tolerance>: every metrics row's loss, grad norm and validation numbers.
compare() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
def rows(run):
    by_step = {}
    for line in open(run + "/metrics.jsonl"):
        row = json.loads(line)
        by_step[row["step"]] = {k: v for k, v in row.items()
                                if k in ("loss", "grad_norm") or k.startswith(("val", "mor_"))}
    return by_step
a, b, tol = rows(sys.argv[1]), rows(sys.argv[2]), float(sys.argv[3])
assert a.keys() == b.keys() and len(a) == 6, f"steps differ: {sorted(a)} vs {sorted(b)}"
worst = 0.0
for step in a:
    for key, x in a[step].items():
        y = b[step][key]
        worst = max(worst, abs(x - y) / max(abs(x), 1e-30))
        assert abs(x - y) <= tol * abs(x), f"step {step} {key}: {x} vs {y} (tolerance {tol})"
print(f"{sys.argv[1]} vs {sys.argv[2]}: {len(a)} steps, largest relative difference {worst:.3g} (tolerance {tol})")
PY
}
# After a failure: `latest` names a whole checkpoint (a save cut short stays a .tmp stage that is never
# published), and it resumes for a step.
resumes_from_latest() {
  step=$(sed 's/step_0*//' "$1/latest")
  "$recur" "${base[@]}" --out "$1" --resume "$1" --steps 100000 --stop_at $((step + 1)) > /dev/null
  echo "resumed from step $step; unpublished stages: $(ls -d "$1"/*.tmp 2> /dev/null | wc -l)"
}
case $case in
  equal) one --out one && two --out two && compare one two 1e-5 ;;
  exact)
    one --out one --reduce_shards 2 && two --out two --reduce_shards 2 && compare one two 0
    cmp one/step_00000006/model.safetensors two/step_00000006/model.safetensors && echo "final weights identical" ;;
  token | expert)
    mor=(--sharing cycle --n_recursions 2 --mor_routing "$case")
    one --out one "${mor[@]}"
    two --out two "${mor[@]}"
    compare one two 1e-5
    grep -q '"mor_balance"\|"mor_aux"' two/metrics.jsonl || { echo "no MoR validation statistics logged"; exit 1; }
    one --out one_exact "${mor[@]}" --reduce_shards 2
    two --out two_exact "${mor[@]}" --reduce_shards 2
    compare one_exact two_exact 0
    cmp one_exact/step_00000006/model.safetensors two_exact/step_00000006/model.safetensors &&
      echo "final weights identical" ;;
  params)
    # rank 1 takes a larger step than rank 0 from the same reduced gradient: the check after step 1 differs
    status=0
    timeout 50 mpirun -np 1 "$recur" "${args[@]}" --out params : -np 1 "$recur" "${args[@]}" --out params --lr 5e-3 \
      > log.txt 2>&1 || status=$?
    cat log.txt
    [ "$status" -ne 0 ] && [ "$status" -ne 124 ] || { echo "expected the job to stop with an error, got $status"; exit 1; }
    grep -q "after step 1 the parameters of rank(s) 1 differ from rank 0's" log.txt ||
      { echo "the message does not name rank 1 and step 1"; exit 1; }
    [ "$(wc -l < params/metrics.jsonl)" -eq 0 ] || { echo "a step was logged after the mismatch"; exit 1; } ;;
  resume)
    two --out full && two --out part --stop_at 3 && two --out part --resume part && compare full part 0 ;;
  n_to_m)
    two --out full
    two --out down --stop_at 3 && one --out down --resume down && compare full down 1e-5
    one --out up --stop_at 3 && two --out up --resume up && compare full up 1e-5 ;;
  dies)
    # rank 1 runs under `timeout`, which kills it after 2 s of a run that takes longer
    status=0
    long=("${base[@]}" --steps 100000 --save_every 2 --out dies)
    timeout 50 mpirun -np 1 "$recur" "${long[@]}" : -np 1 timeout -s KILL 2 "$recur" "${long[@]}" > log.txt 2>&1 ||
      status=$?
    cat log.txt
    [ "$status" -ne 0 ] && [ "$status" -ne 124 ] || { echo "expected the job to stop with an error, got $status"; exit 1; }
    grep -q "rank 1 .*exited on signal 9\|rank 1 with PID" log.txt || { echo "the message does not name rank 1"; exit 1; }
    resumes_from_latest dies ;;
  hangs)
    # rank 1 is stopped (SIGSTOP) after 2 s: rank 0 names it once --comm_timeout has passed
    long=("${base[@]}" --steps 100000 --save_every 2 --comm_timeout 3 --out hangs)
    status=0
    timeout 50 mpirun -np 1 "$recur" "${long[@]}" : -np 1 timeout -s STOP 2 "$recur" "${long[@]}" > log.txt 2>&1 ||
      status=$?
    cat log.txt
    [ "$status" -ne 0 ] && [ "$status" -ne 124 ] || { echo "expected the job to stop with an error, got $status"; exit 1; }
    # stopped while computing, rank 1 is named; stopped inside the collective (rarer), the message says so
    grep -q "rank(s) 1 did not reach\|every rank reached .* but it did not complete" log.txt ||
      { echo "no timeout message"; exit 1; }
    resumes_from_latest hangs ;;
  *) echo "unknown case $case" >&2; exit 2 ;;
esac
