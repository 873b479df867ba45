# Shared by the study scripts (sourced, not run): resumable steps and the choice of medfab's best model.
# Needs OUT (the study folder) and PY (the Python that has medfab) to be set by the caller.

mkdir -p "$OUT/.done"

# SAMPLE_PER_CLASS and SAMPLE_ARGS (environment) -> the `medfab sample` options of every generator (SAMPLE_COUNT:
# --n-per-class N, else --match-counts) and of the best model(s) only (SAMPLE_ARGS, split into words).
SAMPLE_COUNT=(--match-counts)
if [ -n "${SAMPLE_PER_CLASS:-}" ]; then SAMPLE_COUNT=(--n-per-class "$SAMPLE_PER_CLASS"); fi
read -r -a SAMPLE_ARGS <<< "${SAMPLE_ARGS:-}"

# step NAME [--fresh PATH] CMD...: run CMD unless OUT/.done/NAME exists; --fresh removes PATH (a half-written
# output of an interrupted run) first. Every command is printed and logged to OUT/commands.log with its time.
step() {
  local name=$1 fresh=""
  shift
  if [ "$1" = --fresh ]; then fresh=$2; shift 2; fi
  if [ -e "$OUT/.done/$name" ]; then echo "= skip $name (done)"; return 0; fi
  if [ -n "$fresh" ]; then rm -rf "$fresh"; fi
  echo "+ [$(date +%H:%M:%S)] $*" | tee -a "$OUT/commands.log"
  local t0=$SECONDS
  "$@"
  echo "  $name: $((SECONDS - t0)) s" | tee -a "$OUT/commands.log"
  touch "$OUT/.done/$name"
}

# resolve_best NAME: "auto" -> diffusion when this medfab registers it, else dcgan; any other name unchanged.
resolve_best() {
  if [ "$1" != auto ]; then echo "$1"; return 0; fi
  if "$PY" -c "from medfab.models.registry import get_model_class; get_model_class('diffusion')" 2>/dev/null; then
    echo diffusion
  else
    echo dcgan
  fi
}

# check_run RUN MODEL: RUN is a medfab run of MODEL with a complete checkpoint (BEST_RUN, an already-trained best
# model); read with medfab's own run readers, so the checks and messages are those of `medfab sample`.
check_run() {
  "$PY" - "$1" "$2" <<'PYEOF'
import sys
from medfab.errors import MedfabError
from medfab.training.checkpoint import latest_checkpoint, read_run_config
run, model = sys.argv[1], sys.argv[2]
try:
    name = read_run_config(run).get("model", {}).get("name")
except MedfabError as e:
    sys.exit(f"error: BEST_RUN: {e}")
if name != model:
    sys.exit(f"error: BEST_RUN={run} is a {name!r} run, not {model!r}")
if latest_checkpoint(run) is None:
    sys.exit(f"error: BEST_RUN={run} has no complete checkpoint yet")
PYEOF
}
