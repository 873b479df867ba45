#!/usr/bin/env bash
# The Br35H study reproduced with the medfab CLI (GitHub issue 9, item 5): a GAN and a VAE trained per class
# (the study's set-up) and medfab's best class-conditional model, each fabricating as many images per class as
# the real training split; a CNN trained on real, synthetic and mixed data and tested on real images; the four
# VAE reconstruction-error detectors trained on real, synthetic and mixed normal images. Prints medfab's tables
# beside the study's published ones (bench/study_tables.py).
#
# Usage: bench/reproduce_br35h.sh DATA OUT [MINUTES] [BEST_MODEL]
#   DATA        ../shared/data/br35h (yes/ and no/ folders)
#   MINUTES     training minutes per model (per class for the per-class models; default 8): CPU-minutes of the
#               training process (BUDGET=cpu, the default: the same compute whatever else runs), or wall (BUDGET=wall)
#   BEST_MODEL  medfab's best class-conditional model(s), comma-separated (default: diffusion when registered,
#               else dcgan; "none": only the study's per-class models); each gets OUT/best_<model>,
#               OUT/synth_best_<model>, OUT/eval_best_<model>
# Environment: SIZE (64), SEEDS (CNN seeds, 3), EPOCHS (CNN epochs, 6), ANOMALY_MINUTES (MINUTES / 2),
#   CAP (evaluate --max-per-class: images per class and set in the CNN study; unset = all),
#   ANOMALY_SYNTH (generator whose images train the synthetic/mixed detectors: gan, vae or best_<model>; gan),
#   FAMILIES (evaluate families, "utility,privacy"), SAMPLE_PER_CLASS (fabricate N per class instead of
#   --match-counts: enough when CAP caps the evaluation anyway, and diffusion sampling on a CPU is slow),
#   SAMPLE_ARGS (extra `medfab sample` options for the best model(s) only, e.g. "--steps 16" for diffusion),
#   BEST_RUN (an already-trained run of the one BEST_MODEL, e.g. a long background training on OUT/data or the
#   same split, used instead of training one for MINUTES), MEDFAB (.venv/bin/medfab),
#   PYTHON (.venv/bin/python).
# Resumable: a finished step leaves OUT/.done/<step> and is skipped next time; an interrupted training
# resumes from its last checkpoint. Run from the repository root, e.g.
#   OMP_NUM_THREADS=1 nohup nice -n 10 bench/reproduce_br35h.sh ../shared/data/br35h runs/br35h 8 > br35h.log 2>&1 &
#
# Preprocessing: Br35H's image sizes differ by class, so padding whole images to a square leaks the label. The
# split is cropped to each head's bounding box once (bench/export_preprocessed.py, PreprocessConfig
# fit='crop_head') into OUT/data as 64x64 PNGs, and every command reads that folder.
set -euo pipefail
DATA=${1:?usage: bench/reproduce_br35h.sh DATA OUT [MINUTES] [BEST_MODEL]}
OUT=${2:?output folder}
MINUTES=${3:-8}
BEST=${4:-auto}
SIZE=${SIZE:-64}
BUDGET=${BUDGET:-cpu}
case "$BUDGET" in cpu) BUDGET_FLAG=--cpu-minutes ;; wall) BUDGET_FLAG=--minutes ;;
  *) echo "error: BUDGET must be cpu or wall, not '$BUDGET'" >&2; exit 2 ;; esac
SEEDS=${SEEDS:-3}          # one CNN seed varies by +-0.05 in synthetic-only BA (stop 15): too noisy to rank models
EPOCHS=${EPOCHS:-6}
ANOMALY_MINUTES=${ANOMALY_MINUTES:-$(awk "BEGIN {print $MINUTES / 2}")}
ANOMALY_SYNTH=${ANOMALY_SYNTH:-gan}
FAMILIES=${FAMILIES:-utility,privacy}
CAP=${CAP:-}
M=${MEDFAB:-.venv/bin/medfab}
PY=${PYTHON:-.venv/bin/python}
HERE=$(cd "$(dirname "$0")" && pwd)

. "$HERE/_study_lib.sh"      # step(), resolve_best(), check_run(), SAMPLE_COUNT, SAMPLE_ARGS

BEST=$(resolve_best "$BEST")
BESTS=()
if [ "$BEST" != none ]; then IFS=, read -r -a BESTS <<< "$BEST"; fi
BEST_RUN=${BEST_RUN:-}
if [ -n "$BEST_RUN" ] && [ "${#BESTS[@]}" != 1 ]; then
  echo "error: BEST_RUN needs exactly one BEST_MODEL, not '$BEST'" >&2; exit 2
fi
if [ -n "$BEST_RUN" ]; then check_run "$BEST_RUN" "${BESTS[0]}"; fi     # before hours of other training
echo "Br35H study: DATA=$DATA OUT=$OUT MINUTES=$MINUTES ($BUDGET) BEST=$BEST SIZE=$SIZE SEEDS=$SEEDS EPOCHS=$EPOCHS CAP=${CAP:-all}"

# 1. split with near-duplicates kept on one side, then crop every head to its bounding box
step split --fresh "$OUT/split" "$M" data split "$DATA" --out "$OUT/split" --test 0.2 --seed 0
step crop --fresh "$OUT/data" "$PY" "$HERE/export_preprocessed.py" "$OUT/split" "$OUT/data" --size "$SIZE" --fit crop_head
D="$OUT/data"

# 2. generators: a GAN and a VAE per class (the study), medfab's best class-conditional model
common=(--data "$D" --size "$SIZE" "$BUDGET_FLAG" "$MINUTES" --seed 0 --no-progress)
step train_gan "$M" train --model dcgan --per-class --out "$OUT/gan" "${common[@]}"
step train_vae "$M" train --model vae --per-class --out "$OUT/vae" "${common[@]}"
GENS=(gan vae)
declare -A RUN=([gan]="$OUT/gan" [vae]="$OUT/vae")
declare -A LABEL=([gan]="GAN (dcgan) per class" [vae]="VAE per class")
for b in "${BESTS[@]}"; do
  if [ -n "$BEST_RUN" ]; then
    RUN[best_$b]="$BEST_RUN"
  else
    step "train_best_$b" "$M" train --model "$b" --out "$OUT/best_$b" "${common[@]}"
    RUN[best_$b]="$OUT/best_$b"
  fi
  GENS+=("best_$b")
  LABEL[best_$b]="best: $b"
done

# 3. fabricate as many images per class as the real training split
for g in "${GENS[@]}"; do
  extra=()
  if [[ $g == best_* ]]; then extra=("${SAMPLE_ARGS[@]}"); fi
  step "sample_$g" --fresh "$OUT/synth_$g" "$M" sample --run "${RUN[$g]}" "${SAMPLE_COUNT[@]}" \
    --out "$OUT/synth_$g" --seed 0 --no-progress "${extra[@]}"
done

# 4. CNN trained on real, synthetic and real + synthetic data, tested on the real test split
cap=()
if [ -n "$CAP" ]; then cap=(--max-per-class "$CAP"); fi
for g in "${GENS[@]}"; do
  step "eval_$g" --fresh "$OUT/eval_$g" "$M" evaluate --no-progress --real-train "$D/train" \
    --real-test "$D/test" --synthetic "$OUT/synth_$g" --out "$OUT/eval_$g" --size "$SIZE" \
    --families "$FAMILIES" --features pixel --classifiers cnn --seeds "$SEEDS" --epochs "$EPOCHS" "${cap[@]}"
done

# 5. VAE reconstruction-error detectors (GIAEM, DBSCAN, single-example KMeans, global KMeans), normal = "no"
S="$OUT/synth_$ANOMALY_SYNTH"
for kind in real synthetic mixed; do
  syn=()
  if [ "$kind" != real ]; then syn=(--synthetic "$S"); fi
  step "anomaly_fit_$kind" --fresh "$OUT/anomaly/$kind" "$M" anomaly fit --data "$D" --normal-class no \
    --training "$kind" "${syn[@]}" --out "$OUT/anomaly/$kind" --size "$SIZE" "$BUDGET_FLAG" "$ANOMALY_MINUTES" \
    --seed 0 --no-progress
  step "anomaly_eval_$kind" "$M" anomaly eval --run "$OUT/anomaly/$kind" --test "$D/test" \
    --out "$OUT/anomaly_eval" --no-progress
done

# 6. tables beside the published ones
cnn=()
for g in "${GENS[@]}"; do cnn+=(--cnn "${LABEL[$g]}=$OUT/eval_$g"); done
"$PY" "$HERE/study_tables.py" br35h --positive yes "${cnn[@]}" --anomaly "$OUT/anomaly_eval" | tee "$OUT/tables.md"
echo "tables: $OUT/tables.md"
