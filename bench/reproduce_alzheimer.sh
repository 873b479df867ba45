#!/usr/bin/env bash
# The pix2pix study on Alzheimer-4 reproduced with the medfab CLI (GitHub issue 9, item 5): pix2pix and medfab's
# best model trained on the official train split, each fabricating as many images per stage as the real
# training split; `medfab evaluate` against the official test split; a table of per-stage CNN recognition
# (class fidelity), greyscale histograms (JS / W1), brain mass on binarised images (each beside the real-vs-real
# baseline), near-copy rate, and utility: balanced accuracy and macro-F1 of a CNN trained on real, synthetic
# and real + synthetic images, with the minority stages' recall (bench/study_tables.py).
#
# Usage: bench/reproduce_alzheimer.sh DATA OUT [MINUTES] [MODEL]
#   DATA     ../shared/data/alzheimer4 (train/ and test/, one folder per stage)
#   MINUTES  training minutes per model (default 8): CPU-minutes of the training process (BUDGET=cpu, the
#            default), or wall-clock minutes (BUDGET=wall)
#   MODEL    medfab's best model beside pix2pix (default: diffusion when registered, else dcgan; "none": skip)
# Environment: SIZE (64), SEEDS (CNN seeds, 3), EPOCHS (CNN epochs, 8), CAP (images per class and set in the
#   evaluation, 400), FAMILIES ("fidelity,class,utility,privacy"), MINORITY ("MildDemented,ModerateDemented"),
#   SAMPLE_PER_CLASS (fabricate N per stage instead of --match-counts: enough when CAP caps the evaluation
#   anyway, and diffusion sampling on a CPU is slow), SAMPLE_ARGS (extra `medfab sample` options for MODEL only,
#   e.g. "--sampler dpmpp --steps 12"), BEST_RUN (an already-trained run of MODEL, used instead of training one
#   for MINUTES),
#   MEDFAB (.venv/bin/medfab), PYTHON (.venv/bin/python).
# Resumable: a finished step leaves OUT/.done/<step>; an interrupted training resumes from its checkpoint.
#   OMP_NUM_THREADS=1 nohup nice -n 10 bench/reproduce_alzheimer.sh ../shared/data/alzheimer4 runs/alz 8 > alz.log 2>&1 &
# The images all have one size (176 x 208), so the default preprocessing (pad to a square) leaks nothing.
set -euo pipefail
DATA=${1:?usage: bench/reproduce_alzheimer.sh DATA OUT [MINUTES] [MODEL]}
OUT=${2:?output folder}
MINUTES=${3:-8}
BEST=${4:-auto}
SIZE=${SIZE:-64}
BUDGET=${BUDGET:-cpu}
case "$BUDGET" in cpu) BUDGET_FLAG=--cpu-minutes ;; wall) BUDGET_FLAG=--minutes ;;
  *) echo "error: BUDGET must be cpu or wall, not '$BUDGET'" >&2; exit 2 ;; esac
SEEDS=${SEEDS:-3}          # one CNN seed varies by +-0.05 in synthetic-only BA (stop 15): too noisy to rank models
EPOCHS=${EPOCHS:-8}
CAP=${CAP:-400}
FAMILIES=${FAMILIES:-fidelity,class,utility,privacy}
MINORITY=${MINORITY:-MildDemented,ModerateDemented}
M=${MEDFAB:-.venv/bin/medfab}
PY=${PYTHON:-.venv/bin/python}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$DATA/train" ] || [ ! -d "$DATA/test" ]; then
  echo "error: $DATA needs train/ and test/ folders (the official split)" >&2
  exit 2
fi

. "$HERE/_study_lib.sh"      # step(), resolve_best(), check_run(), SAMPLE_COUNT, SAMPLE_ARGS

BEST=$(resolve_best "$BEST")
MODELS=(pix2pix)
if [ "$BEST" != none ] && [ "$BEST" != pix2pix ]; then MODELS+=("$BEST"); fi
echo "Alzheimer-4 study: DATA=$DATA OUT=$OUT MINUTES=$MINUTES ($BUDGET) MODELS=${MODELS[*]} SIZE=$SIZE CAP=$CAP"

BEST_RUN=${BEST_RUN:-}
if [ -n "$BEST_RUN" ] && { [ "$BEST" = none ] || [ "$BEST" = pix2pix ]; }; then
  echo "error: BEST_RUN needs a MODEL other than pix2pix and none" >&2; exit 2
fi
if [ -n "$BEST_RUN" ]; then check_run "$BEST_RUN" "$BEST"; fi

tables=()
for model in "${MODELS[@]}"; do
  run="$OUT/$model/run"
  if [ -n "$BEST_RUN" ] && [ "$model" = "$BEST" ]; then
    run=$BEST_RUN
  else
    step "train_$model" "$M" train --model "$model" --data "$DATA" --out "$run" --size "$SIZE" \
      "$BUDGET_FLAG" "$MINUTES" --seed 0 --no-progress
  fi
  extra=()
  if [ "$model" = "$BEST" ]; then extra=("${SAMPLE_ARGS[@]}"); fi
  step "sample_$model" --fresh "$OUT/$model/synthetic" "$M" sample --run "$run" "${SAMPLE_COUNT[@]}" \
    --out "$OUT/$model/synthetic" --seed 0 --no-progress "${extra[@]}"
  step "eval_$model" --fresh "$OUT/$model/eval" "$M" evaluate --no-progress --real-train "$DATA/train" --real-test "$DATA/test" \
    --synthetic "$OUT/$model/synthetic" --out "$OUT/$model/eval" --size "$SIZE" --max-per-class "$CAP" \
    --families "$FAMILIES" --features pixel --classifiers cnn --seeds "$SEEDS" --epochs "$EPOCHS"
  tables+=(--eval "$model=$OUT/$model/eval")
done

"$PY" "$HERE/study_tables.py" alzheimer --minority "$MINORITY" "${tables[@]}" | tee "$OUT/tables.md"
echo "tables: $OUT/tables.md"
