#!/usr/bin/env bash
# Quality vs training minutes: several models trained for the same budgets, fabricating from each checkpoint
# and scored by `medfab evaluate --families utility` (CNN trained on synthetic only and on real + synthetic,
# tested on real images). Prints one table: model x minutes (bench/study_tables.py minutes), and draws the curve
# into OUT/quality_vs_minutes.png.
#
# Usage: bench/quality_vs_minutes.sh DATA OUT
#   DATA  a split data set with train/ and test/ (e.g. ../shared/data/alzheimer4, or OUT/data written by
#         bench/reproduce_br35h.sh: Br35H split near-duplicate-aware and cropped to the head)
# Environment:
#   MARKS     training minutes at which each model is measured (default "5 10 30"; add 120 for the long run)
#   BUDGET    cpu (default): MARKS are CPU-minutes of each training process (`medfab train --cpu-minutes`), the
#             same compute for every model whatever else runs on the machine; wall: wall-clock `--minutes`
#   MODELS    default "dcgan vae cdcgan" plus "diffusion" when registered. "cdcgan" is the canonical
#             conditional DCGAN (Radford et al. 2016 / pytorch examples: BN in G and D, no spectral norm,
#             BCE loss, 64 channels, batch 128, no DiffAugment, no EMA) run as medfab's dcgan with --set.
#   PARALLEL  models trained at the same time (default 2), each with OMP_NUM_THREADS=1
#   SIZE (64), SEEDS (3), EPOCHS (6), CAP (images per class and set in the evaluation, 300),
#   SAMPLE_PER_CLASS (fabricate N per class instead of --match-counts; CAP caps the evaluation anyway),
#   DIFFUSION_SAMPLE_ARGS (extra `medfab sample` options for diffusion / ldm, e.g. "--steps 16"),
#   MEDFAB (.venv/bin/medfab), PYTHON (.venv/bin/python)
#
# Why CPU-minutes: this machine's two cores are shared with other people's jobs, so a wall-clock budget buys
# different compute at different hours (stop 14 measured 3 to 11 CPU-minutes in 30 wall-minutes at load 8).
# `--cpu-minutes` stops each training at the same CPU time of its own process, one thread each (the table's
# CPU-min and kimg columns say what each got). PARALLEL only sets how many run at once: more than the cores
# changes the wall time, not the figures.
#
# Each model trains in stages: `medfab train --cpu-minutes M` resumes the run folder and stops at M minutes in
# total, so the checkpoint after each stage is the M-minute checkpoint; it is sampled and evaluated before the
# next stage. Resumable: finished steps leave OUT/.done/<step>.
set -euo pipefail
DATA=${1:?usage: bench/quality_vs_minutes.sh DATA OUT}
OUT=${2:?output folder}
MARKS=${MARKS:-5 10 30}
BUDGET=${BUDGET:-cpu}
case "$BUDGET" in cpu) BUDGET_FLAG=--cpu-minutes ;; wall) BUDGET_FLAG=--minutes ;;
  *) echo "error: BUDGET must be cpu or wall, not '$BUDGET'" >&2; exit 2 ;; esac
SIZE=${SIZE:-64}
SEEDS=${SEEDS:-3}          # one CNN seed varies by +-0.05 in synthetic-only BA (stop 15): too noisy to rank models
EPOCHS=${EPOCHS:-6}
CAP=${CAP:-300}
read -r -a DIFFUSION_SAMPLE_ARGS <<< "${DIFFUSION_SAMPLE_ARGS:-}"
PARALLEL=${PARALLEL:-2}
M=${MEDFAB:-.venv/bin/medfab}
PY=${PYTHON:-.venv/bin/python}
HERE=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ ! -d "$DATA/train" ] || [ ! -d "$DATA/test" ]; then
  echo "error: $DATA needs train/ and test/ folders (split it with 'medfab data split')" >&2
  exit 2
fi
. "$HERE/_study_lib.sh"      # step(), resolve_best(), SAMPLE_COUNT
if [ -z "${MODELS:-}" ]; then
  MODELS="dcgan vae cdcgan"
  if [ "$(resolve_best auto)" = diffusion ]; then MODELS="$MODELS diffusion"; fi
fi
CDCGAN=(--model dcgan --set loss=ns --set g_norm=batch --set d_norm=batch --set d_spectral_norm=false
        --set diffaug=none --set ema=false --set g_width=64 --set d_width=64 --set batch_size=128)

# one model through every mark: train to the mark, keep the checkpoint's record, fabricate, evaluate
one_model() {
  local name=$1 run="$OUT/$1/run" mark
  local args=(--model "$name") extra=()
  if [ "$name" = cdcgan ]; then args=("${CDCGAN[@]}"); fi
  if [ "$name" = diffusion ] || [ "$name" = ldm ]; then extra=("${DIFFUSION_SAMPLE_ARGS[@]}"); fi
  for mark in $MARKS; do
    local d="$OUT/$name/m$mark"
    step "train_${name}_$mark" "$M" train "${args[@]}" --data "$DATA" --out "$run" --size "$SIZE" \
      "$BUDGET_FLAG" "$mark" --seed 0 --no-progress
    if [ ! -e "$OUT/.done/record_${name}_$mark" ]; then
      mkdir -p "$d"
      cp "$(ls "$run"/checkpoints/*.json | sort | tail -n 1)" "$d/checkpoint.json"
      touch "$OUT/.done/record_${name}_$mark"
    fi
    step "sample_${name}_$mark" --fresh "$d/synthetic" "$M" sample --run "$run" "${SAMPLE_COUNT[@]}" \
      --out "$d/synthetic" --seed 0 --no-progress "${extra[@]}"
    step "eval_${name}_$mark" --fresh "$d/eval" "$M" evaluate --no-progress --real-train "$DATA/train" --real-test "$DATA/test" \
      --synthetic "$d/synthetic" --out "$d/eval" --size "$SIZE" --max-per-class "$CAP" --families utility \
      --classifiers cnn --seeds "$SEEDS" --epochs "$EPOCHS"
  done
}

echo "quality vs minutes: DATA=$DATA OUT=$OUT MODELS=($MODELS) MARKS=($MARKS) PARALLEL=$PARALLEL"
pids=()
for name in $MODELS; do
  one_model "$name" > "$OUT/$name.log" 2>&1 &
  pids+=($!)
  echo "started $name (pid $!, log $OUT/$name.log)"
  while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do sleep 5; done
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
if [ "$fail" = 1 ]; then echo "error: a model failed; see $OUT/*.log" >&2; exit 1; fi

evals=()
for name in $MODELS; do
  for mark in $MARKS; do evals+=(--eval "$name@$mark=$OUT/$name/m$mark/eval"); done
done
"$PY" "$HERE/study_tables.py" minutes "${evals[@]}" --plot "$OUT/quality_vs_minutes.png" | tee "$OUT/tables.md"
echo "tables: $OUT/tables.md"
