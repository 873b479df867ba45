"""Tables of the reproduced studies, read from the results.json files of `medfab evaluate` / `medfab anomaly eval`.

Three tables, printed as Markdown (pasteable into an issue):

    br35h      CNN tested on real images (accuracy / precision / recall / F1 %, tumour = positive) per training
               kind and generator, beside the Br35H study's published row; the four VAE reconstruction-error
               detectors per training kind, beside the study's GIAEM and global-KMeans accuracies.
    alzheimer  per-stage class fidelity (recognised share of each requested stage, next to the same CNN on
               real test images), greyscale histograms (JS / W1) and brain mass (KS / W1 / means), each with
               the real-vs-real baseline; utility (balanced accuracy, macro-F1, minority-stage recall) of real,
               synthetic and real + synthetic training; near-copy rate.
    minutes    synthetic-only and mixed utility per model and training budget (quality vs minutes); --plot PNG
               draws synthetic-only BA / real against CPU-minutes per model.

    .venv/bin/python bench/study_tables.py br35h --cnn "gan per class=OUT/eval_gan" --anomaly OUT/anomaly_eval
    .venv/bin/python bench/study_tables.py alzheimer --eval "pix2pix=OUT/eval_pix2pix" --minority MildDemented
    .venv/bin/python bench/study_tables.py minutes --eval "dcgan@5=OUT/dcgan/5/eval" --eval "dcgan@10=..."

Figures are means over the evaluation's classifier seeds. A figure the evaluation could not compute (stored
as ``{"skipped": reason}``) or a family that did not run prints as "-".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

# The Br35H study's published figures (README of the data set; random split, so near-duplicates straddle it).
BR35H_CNN = {  # training kind -> (accuracy, precision, recall, F1) in %
    "real": (96.67, 95.42, 97.99, 96.69),
    "synthetic": (58.16, 57.53, 56.94, 57.24),
    "mixed": (49.97, 49.98, 99.93, 66.64),
}
BR35H_ANOMALY_ACCURACY = {  # (detector, training kind) -> accuracy in %
    ("GIAEM", "real"): 60.44, ("GIAEM", "synthetic"): 80.08, ("GIAEM", "mixed"): 81.24,
    ("global KMeans", "real"): 82.93, ("global KMeans", "synthetic"): 79.39, ("global KMeans", "mixed"): 78.80,
}
# utility regime of `medfab evaluate` -> the study's name for the training kind
KINDS = {"real": "real", "synthetic": "synthetic", "real+synthetic": "mixed"}
GOAL = 0.9  # synthetic-only reaches 90 % of real-only


def read_json(path: str | Path) -> dict:
    """``results.json`` of a folder (or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.is_file():
        raise SystemExit(f"no results.json at {p}: run the evaluation step first")
    return json.loads(p.read_text())


def num(v: Any) -> float | None:
    """A number, or None for a skipped / missing value ({"skipped": ...}, null)."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def get(d: Any, *keys) -> Any:
    """``d[k1][k2]...`` or None where any level is missing."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def fmt(v: Any, scale: float = 1.0, digits: int = 3) -> str:
    x = num(v)
    return "-" if x is None else f"{x * scale:.{digits}f}"


def ratio(a: Any, b: Any) -> float | None:
    a, b = num(a), num(b)
    return a / b if a is not None and b else None


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def family(results: dict, name: str) -> dict | None:
    """``data`` of a family that ran, else None."""
    fam = get(results, "families", name)
    return fam.get("data") if isinstance(fam, dict) and fam.get("status") == "ok" else None


def labelled(items: list[str]) -> list[tuple[str, str]]:
    """["label=path", ...] -> [(label, path)]; a bare path is labelled by its folder name."""
    out = []
    for it in items:
        label, sep, path = it.partition("=")
        out.append((label, path) if sep else (Path(it).name, it))
    return out


# --- Br35H ----------------------------------------------------------------------------------------------
def cnn_rows(results: dict, positive: str) -> dict[str, tuple]:
    """{study kind: (accuracy, precision, recall, F1) of class ``positive``, fractions} from a utility study."""
    util = family(results, "utility") or {}
    out = {}
    for regime, kind in KINDS.items():
        mean = get(util, "regimes", regime, "mean")
        if mean is None:
            continue
        out[kind] = (get(mean, "accuracy"), get(mean, "precision", positive), get(mean, "recall", positive),
                     get(mean, "f1", positive))
    return out


def br35h_cnn_table(evals: list[tuple[str, dict]], positive: str = "yes") -> str:
    header = ["generator", "training", "accuracy %", "precision %", "recall %", "F1 %", "acc / real", "F1 / real",
              "near-copies %"]
    rows = [["study (published, random split)", k, *(f"{v:.2f}" for v in vals), "", "", ""]
            for k, vals in BR35H_CNN.items()]
    for label, res in evals:
        got = cnn_rows(res, positive)
        real = got.get("real", (None,) * 4)
        for kind, vals in got.items():
            rel = ["", ""] if kind == "real" else [fmt(ratio(vals[0], real[0]), digits=2),
                                                    fmt(ratio(vals[3], real[3]), digits=2)]
            copies = fmt(get(family(res, "privacy"), "synth", "copy_rate"), 100, 2) if kind == "synthetic" else ""
            rows.append([f"medfab: {label}", kind, *(fmt(v, 100, 2) for v in vals), *rel, copies])
    return markdown(header, rows)


def br35h_anomaly_table(results: dict) -> str:
    header = ["detector", "training", "accuracy %", "precision %", "recall %", "F1 %", "AUC", "study accuracy %"]
    rows = []
    order = {"real": 0, "synthetic": 1, "mixed": 2}
    for r in sorted(results.get("rows", []), key=lambda r: (r.get("method", ""), order.get(r.get("training"), 9))):
        pub = BR35H_ANOMALY_ACCURACY.get((r.get("method"), r.get("training")))
        rows.append([str(r.get("method")), str(r.get("training")), *(fmt(r.get(k), 100, 2) for k in
                     ("accuracy", "precision", "recall", "f1")), fmt(r.get("auc")),
                     "-" if pub is None else f"{pub:.2f}"])
    return markdown(header, rows)


# --- Alzheimer ------------------------------------------------------------------------------------------
def fidelity_table(label: str, res: dict) -> str:
    """Per stage: recognition rate, histogram JS / W1 and brain mass, each beside the real-vs-real baseline."""
    cls, fid = family(res, "class"), family(res, "fidelity")
    header = ["model", "stage", "recognised", "real test recall", "hist JS", "JS real-real", "hist W1",
              "W1 real-real", "mass KS", "KS real-real", "mass real", "mass synth"]
    rows = []
    for g in ["overall", *res.get("classes", [])]:
        h = get(fid, "histograms", g) or {}
        m = get(fid, "brain_mass", "groups", g) or {}
        rec = get(cls, "balanced_accuracy") if g == "overall" else get(cls, "recognition_rate", g)
        base = (get(cls, "real_test_baseline", "balanced_accuracy") if g == "overall"
                else get(cls, "real_test_baseline", "recognition_rate", g))
        rows.append([label, g, fmt(rec), fmt(base), fmt(get(h, "synth", "js")), fmt(get(h, "baseline", "js")),
                     fmt(get(h, "synth", "w1")), fmt(get(h, "baseline", "w1")), fmt(get(m, "synth", "ks")),
                     fmt(get(m, "baseline", "ks")), fmt(get(m, "synth", "real_mean")),
                     fmt(get(m, "synth", "synth_mean"))])
    return markdown(header, rows)


def utility_table(evals: list[tuple[str, dict]], minority: list[str]) -> str:
    header = (["model", "training", "balanced acc", "macro-F1", "BA / real", "F1 / real"]
              + [f"recall {c}" for c in minority] + ["near-copies", "real-real copies"])
    rows = []
    for label, res in evals:
        util, priv = family(res, "utility") or {}, family(res, "privacy") or {}
        real = get(util, "regimes", "real", "mean") or {}
        for regime in ("real", "synthetic", "real+synthetic", "real+synthetic top-up"):
            mean = get(util, "regimes", regime, "mean")
            if mean is None:
                continue
            rel = ["", ""] if regime == "real" else [
                fmt(ratio(mean.get("balanced_accuracy"), real.get("balanced_accuracy")), digits=2),
                fmt(ratio(mean.get("macro_f1"), real.get("macro_f1")), digits=2)]
            copies = ["", ""]
            if regime == "synthetic":
                copies = [fmt(get(priv, "synth", "copy_rate")), fmt(get(priv, "baseline", "copy_rate"))]
            rows.append([label, regime, fmt(mean.get("balanced_accuracy")), fmt(mean.get("macro_f1")), *rel,
                         *(fmt(get(mean, "recall", c)) for c in minority), *copies])
    return markdown(header, rows)


# --- quality vs minutes ---------------------------------------------------------------------------------
def _minutes_row(label: str, res: dict, ckpt: dict) -> tuple[str, str, float | None, dict]:
    """``MODEL@MINUTES`` row -> (model, minutes label, checkpoint CPU-minutes or None, utility regimes)."""
    model, _, minutes = label.partition("@")
    cpu = num(get(ckpt, "loop", "cpu_seconds"))
    return model, minutes, (cpu / 60 if cpu is not None else None), get(family(res, "utility"), "regimes") or {}


def minutes_table(evals: list[tuple[str, dict, dict]]) -> str:
    """``(model@minutes, results, checkpoint record)`` rows, sorted by model, then minutes."""
    header = ["model", "minutes", "CPU-min", "kimg", "real BA", "synthetic BA", "synthetic macro-F1", "BA / real",
              "F1 / real", "real+synthetic BA", "real+synthetic F1"]
    rows = []

    def key(item):
        model, _, minutes = item[0].partition("@")
        return model, _float(minutes) or 0.0

    for label, res, ckpt in sorted(evals, key=key):
        model, minutes, cpu_min, reg = _minutes_row(label, res, ckpt)
        real, syn, mix = (get(reg, r, "mean") or {} for r in ("real", "synthetic", "real+synthetic"))
        rows.append([model, minutes or "-", fmt(cpu_min, digits=1),
                     fmt(ckpt.get("kimg"), digits=1), fmt(real.get("balanced_accuracy")),
                     fmt(syn.get("balanced_accuracy")), fmt(syn.get("macro_f1")),
                     fmt(ratio(syn.get("balanced_accuracy"), real.get("balanced_accuracy")), digits=2),
                     fmt(ratio(syn.get("macro_f1"), real.get("macro_f1")), digits=2),
                     fmt(mix.get("balanced_accuracy")), fmt(mix.get("macro_f1"))])
    return markdown(header, rows)


def minutes_points(evals: list[tuple[str, dict, dict]]) -> dict[str, list[tuple[float, float, float]]]:
    """{model: [(CPU-minutes, synthetic BA / real BA, its seed std / real BA), ...]} sorted by minutes.

    The x value is the checkpoint's CPU time when it has one, else the MINUTES of the label. Rows whose
    utility did not run are left out."""
    out: dict[str, list[tuple[float, float, float]]] = {}
    for label, res, ckpt in evals:
        model, minutes, cpu_min, reg = _minutes_row(label, res, ckpt)
        real = num(get(reg, "real", "mean", "balanced_accuracy"))
        syn = num(get(reg, "synthetic", "mean", "balanced_accuracy"))
        x = cpu_min if cpu_min is not None else _float(minutes)
        if real is None or syn is None or not real or x is None:
            continue
        std = num(get(reg, "synthetic", "std", "balanced_accuracy")) or 0.0
        out.setdefault(model, []).append((x, syn / real, std / real))
    return {m: sorted(v) for m, v in sorted(out.items())}


def minutes_plot(points: dict[str, list[tuple[float, float, float]]], path: str | Path) -> Path:
    """Quality vs CPU-minutes as a PNG: synthetic-only BA / real BA per model (bars: CNN seed std), the goal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for model, pts in points.items():
        x, y, e = zip(*pts)
        ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=model)
    ax.axhline(GOAL, color="grey", ls="--", lw=1, label=f"goal {GOAL:g} x real")
    ax.set_xscale("log")
    ax.set_xlabel("training CPU-minutes (log)")
    ax.set_ylabel("synthetic-only BA / real-only BA")
    ax.set_title("Quality vs training time (CNN tested on real images)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def checkpoint_record(eval_dir: str | Path) -> dict:
    """The checkpoint sidecar (step, kimg, train_seconds) that quality_vs_minutes.sh copies beside EVAL."""
    p = Path(eval_dir).parent / "checkpoint.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def _float(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="study", required=True)
    b = sub.add_parser("br35h", help="CNN and anomaly tables beside the published Br35H study")
    b.add_argument("--cnn", action="append", default=[], help="LABEL=EVAL folder of `medfab evaluate`")
    b.add_argument("--anomaly", default=None, help="results folder of `medfab anomaly eval`")
    b.add_argument("--positive", default="yes", help="the class counted as positive (tumour)")
    a = sub.add_parser("alzheimer", help="fidelity and utility tables of the pix2pix study")
    a.add_argument("--eval", action="append", default=[], help="LABEL=EVAL folder of `medfab evaluate`")
    a.add_argument("--minority", default="MildDemented,ModerateDemented", help="comma-separated classes")
    m = sub.add_parser("minutes", help="utility per model and training minutes")
    m.add_argument("--eval", action="append", default=[], help="MODEL@MINUTES=EVAL folder")
    m.add_argument("--plot", default=None, help="also draw synthetic-only BA / real vs CPU-minutes into this PNG")
    args = ap.parse_args(argv)

    if args.study == "br35h":
        evals = [(lab, read_json(p)) for lab, p in labelled(args.cnn)]
        print("### Br35H: CNN trained on real / synthetic / mixed data, tested on real images "
              f"(positive class '{args.positive}'; medfab: near-duplicate-aware split)\n")
        print(br35h_cnn_table(evals, args.positive))
        if args.anomaly:
            print("\n### Br35H: VAE reconstruction-error detectors, tested on real images (abnormal = positive)\n")
            print(br35h_anomaly_table(read_json(args.anomaly)))
    elif args.study == "alzheimer":
        evals = [(lab, read_json(p)) for lab, p in labelled(args.eval)]
        minority = [c for c in args.minority.split(",") if c]
        for lab, res in evals:
            print(f"### Alzheimer-4 fidelity: {lab} (synthetic vs real half A; baseline real half B vs A)\n")
            print(fidelity_table(lab, res) + "\n")
        print("### Alzheimer-4 utility: CNN tested on the official real test split\n")
        print(utility_table(evals, minority))
    else:
        rows = [(lab, read_json(p), checkpoint_record(p)) for lab, p in labelled(args.eval)]
        kinds = sorted({str(r.get("model")) for _, res, _ in rows
                        for r in (get(family(res, "utility"), "table") or [])[:1]})
        print(f"### Quality vs training minutes: utility on the real test split ({', '.join(kinds) or '?'})\n")
        print(minutes_table(rows))
        if args.plot:
            print(f"\nplot: {minutes_plot(minutes_points(rows), args.plot)}")


if __name__ == "__main__":
    main()
