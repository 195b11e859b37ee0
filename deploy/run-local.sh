#!/usr/bin/env bash
# A tiny local stand-in for the scheduler: runs deploy/slurm/$TASK.sbatch (TASK: extract, the
# default, queries or evaluate) as N array tasks (separate processes, SLURM_ARRAY_TASK_ID /
# SLURM_ARRAY_TASK_COUNT set as Slurm sets them, at most PARALLEL at once), then
# deploy/slurm/merge.sbatch, so the scripts' command lines are tested without a cluster.
# Usage: [TASK=…] DATASET=… (or LIST=… MODELS=…) OUT=… [N=3] [PARALLEL=N] [FHE_SHAZAM=…] deploy/run-local.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
n="${N:-3}"
task="${TASK:-extract}"
[ -f "$here/slurm/$task.sbatch" ] || { echo "no deploy/slurm/$task.sbatch (TASK: extract, queries or evaluate)" >&2; exit 1; }
parallel="${PARALLEL:-$n}"
pids=()
for ((i = 0; i < n; i++)); do
  SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_TASK_COUNT=$n SLURM_CPUS_PER_TASK=1 \
    bash "$here/slurm/$task.sbatch" > "$OUT.task-$i.log" 2>&1 &
  pids+=($!)
  if [ ${#pids[@]} -ge "$parallel" ]; then wait "${pids[0]}" || { echo "task failed, see $OUT.task-*.log" >&2; exit 1; }; pids=("${pids[@]:1}"); fi
done
for pid in "${pids[@]}"; do wait "$pid" || { echo "task failed, see $OUT.task-*.log" >&2; exit 1; }; done
bash "$here/slurm/merge.sbatch"
