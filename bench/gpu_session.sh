#!/usr/bin/env bash
# The GPU benchmarks of issues 8, 9 and 10 as two prepared commands for a lent GPU machine (the `device` tool:
# about 15 device-minutes per session, start-up included, at most 10 minutes per command).
#
# 1. Here, once per checkout (downloads wheels from PyPI, copies data subsets; ~50 MB in .gpu/, git-ignored):
#      bash bench/gpu_session.sh prepare ../shared/data
# 2. There, two calls of the device tool's `run`, each with carry [".gpu"]:
#      bash bench/gpu_session.sh bench      # ~5 min: training, sampling, evaluation and progan3d speed alone on the GPU
#      bash bench/gpu_session.sh quality    # ~6 min: diffusion, dcgan, vae and the canonical cDCGAN side by side on
#                                           #   Br35H 64^2 for QUALITY_MINUTES (default 4) wall-minutes each, CNN utility
#    Each writes $OUT/<part>.tar.gz (logs and JSON) and $OUT/<part>_summary.txt; then give the machine back.
# 3. Locally, the plumbing at toy sizes on the CPU (no GPU, no .gpu/ needed; about 3 minutes):
#      SMOKE=1 bash bench/gpu_session.sh bench && SMOKE=1 bash bench/gpu_session.sh quality
set -uo pipefail
PART=${1:?usage: bench/gpu_session.sh prepare SHARED_DATA | bench | quality}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
G=.gpu
SMOKE=${SMOKE:-}

if [ "$PART" = prepare ]; then
  SHARED=${2:?usage: bench/gpu_session.sh prepare SHARED_DATA (e.g. ../shared/data)}
  set -e
  grep -qx "/$G/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/$G/" >> .git/info/exclude; }
  mkdir -p "$G/whl" "$G/ixi40/t1" "$G/ixi40/seg"
  # the device's Python 3.12 lacks these (device README); one version each, no dependencies resolved there
  plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
  for pkg in "pydantic==$(.venv/bin/python -c 'import pydantic; print(pydantic.VERSION)')" \
             "pydantic-core==$(.venv/bin/python -c 'import pydantic_core; print(pydantic_core.__version__)')" \
             annotated-types typing-inspection typing-extensions monai nibabel pydicom; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      "${plat[@]}" -d "$G/whl" "$pkg"
  done
  # Br35H: split near-duplicate-aware and cropped to the head at 64^2 (as bench/reproduce_br35h.sh does)
  if [ ! -d "$G/br35h64/train" ]; then
    rm -rf "$G/br35h_split" "$G/br35h64"
    .venv/bin/medfab data split "$SHARED/br35h" --out "$G/br35h_split" --test 0.2 --seed 0 > /dev/null
    .venv/bin/python bench/export_preprocessed.py "$G/br35h_split" "$G/br35h64" --size 64 --fit crop_head
    rm -rf "$G/br35h_split"
  fi
  # ixi_t1: the first 40 volumes by name and their parcellations
  for f in $(ls "$SHARED/ixi_t1/t1" | sort | head -n 40); do
    cp "$SHARED/ixi_t1/t1/$f" "$G/ixi40/t1/"
    cp "$SHARED/ixi_t1/seg/${f%.nii.gz}"_* "$G/ixi40/seg/"
  done
  du -sh "$G"
  exit 0
fi

OUT=${OUT:-/tmp/gpu_session_out}
W=$(mktemp -d)
mkdir -p "$OUT"
if [ -n "$SMOKE" ]; then
  DEV=cpu PY=${PYTHON:-.venv/bin/python}
  BR=${SMOKE_DATA:-demo_out/phantom}; IXI=${SMOKE_IXI:-}
else
  DEV=cuda PY=python3
  if [ -d "$G/whl" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      "$G"/whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
  fi
  BR=$G/br35h64; IXI=$G/ixi40
  nvidia-smi > "$W/nvidia_smi.txt" 2>&1
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$ROOT/src" PYTHONUNBUFFERED=1
printf '#!/bin/sh\nexec %s -m medfab.cli.main "$@"\n' "$PY" > "$W/medfab" && chmod +x "$W/medfab"
SUMMARY="$OUT/${PART}_summary.txt"
: > "$SUMMARY"

# run NAME SECONDS CMD...: time-boxed, logged to $W/NAME.log; the last lines go to the summary
run() {
  local name=$1 limit=$2 t0=$SECONDS
  shift 2
  echo "+ [$(date +%T)] $name: $*" | tee -a "$SUMMARY"
  timeout "$limit" "$@" > "$W/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$W/$name.log" >> "$SUMMARY"
  echo "  $name: rc $rc, $((SECONDS - t0)) s" | tee -a "$SUMMARY"
}

case "$PART" in
bench)
  if [ -n "$SMOKE" ]; then
    sz=(--sizes 32) tr=(--widths 8 --batch 8 --steps 2 --rounds 1 --warmup 1) sa=(--n 16 --n-old 4) ev=(--n 200 --size 32)
    p3=(--size 16 --batch 2 --steps 2 --rounds 1 --fmap-base 64 --fmap-max 16)
  else
    sz=(--sizes 64 128) tr=(--batch 64 --rounds 3) sa=(--n 4096 --n-old 64 --batch-size 512) ev=(--n 5000 --size 128)
    p3=(--size 64 --batch 8 --steps 20 --rounds 2)
  fi
  # issue 8: training img/s and peak memory alone on the GPU, medfab vs the reference in the same process
  run train_speed 200 "$PY" bench/bench_train_speed.py --device "$DEV" --models dcgan dcgan-default pix2pix \
    pix2pix-plain vae "${sz[@]}" "${tr[@]}" --json "$W/train_speed.json"
  run sample_speed 90 "$PY" bench/bench_sample_speed.py --device "$DEV" --models dcgan wgan-gp vae pix2pix \
    "${sz[@]}" "${sa[@]}"
  run eval_speed 90 "$PY" bench/bench_eval_speed.py --device "$DEV" "${ev[@]}"
  # issue 10: progan3d per stage up to 64^3, image alone and image + segmentation
  if [ -n "$IXI" ]; then
    run progan3d 150 "$PY" bench/bench_progan3d.py --device "$DEV" --data "$IXI" "${p3[@]}" --json "$W/progan3d.json"
    run progan3d_seg 90 "$PY" bench/bench_progan3d.py --device "$DEV" --data "$IXI" "${p3[@]}" --min-size "${p3[1]}" \
      --with-seg --json "$W/progan3d_seg.json"
  fi
  ;;
quality)
  # issue 9: the same wall-clock minutes for each model, side by side on the one GPU, CNN utility on real test
  mins=${QUALITY_MINUTES:-4} size=64 per=300 epochs=10 steps=16
  if [ -n "$SMOKE" ]; then mins=0.05 size=32 per=10 epochs=1 steps=4; fi
  run quality $((${mins%.*} * 60 + 240)) env MEDFAB="$W/medfab" PYTHON="$PY" BUDGET=wall MARKS="$mins" \
    MODELS="${QUALITY_MODELS:-diffusion cdcgan dcgan vae}" PARALLEL=4 SIZE=$size CAP=300 SAMPLE_PER_CLASS=$per \
    EPOCHS=$epochs DIFFUSION_SAMPLE_ARGS="--sampler dpmpp --steps $steps" bash bench/quality_vs_minutes.sh "$BR" "$W/qvm"
  cp "$W/qvm/tables.md" "$OUT/quality_tables.md" 2>/dev/null
  ;;
*)
  echo "error: unknown part '$PART' (prepare, bench or quality)" >&2
  exit 2
  ;;
esac
find "$W" -name "*.png" -path "*grids*" -delete 2>/dev/null
tar -czf "$OUT/$PART.tar.gz" -C "$W" --exclude="*.safetensors" --exclude="synthetic" . 2>/dev/null
echo "wrote $OUT/$PART.tar.gz and $SUMMARY"
