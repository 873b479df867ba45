"""``medfab anomaly eval``: label every test image with each detector, score, plot, write results.json.

``results.json`` has the shape the HTML report reads (see :mod:`medfab.report.html`): ``rows`` (one per
method x training kind, with accuracy / precision / recall / f1 / auc plus the confusion counts tp, fp,
tn, fn and n), ``figures`` and ``note``. Evaluating another run into the same folder replaces only the
rows and figures of that run's training label, so real / synthetic / mixed runs build one study table.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from medfab.anomaly import recon
from medfab.anomaly.fit import ANOMALY_FILE
from medfab.anomaly.methods import ErrorSet, load_detector
from medfab.anomaly.metrics import binary_metrics
from medfab.errors import MedfabError

DISPLAY = {"giaem": "GIAEM", "dbscan": "DBSCAN", "kmeans_single": "single-example KMeans",
           "kmeans_global": "global KMeans"}
NOTE = ("Abnormal = positive. A VAE trained on normal images only; GIAEM and single-example KMeans use a "
        "threshold from validation data, DBSCAN and global KMeans cluster error features (see docs/anomaly.md).")


def read_anomaly_run(run: str | Path) -> tuple[object, dict, dict]:
    """(VAE in eval mode, run config.json, anomaly.json) of an ``anomaly fit`` run folder."""
    from medfab.training.checkpoint import load_run

    run = Path(run)
    if not (run / ANOMALY_FILE).is_file():
        raise MedfabError(f"{run} is not an anomaly run (no {ANOMALY_FILE})",
                          "give the --out folder of 'medfab anomaly fit' (it writes anomaly.json at the end)")
    model, config = load_run(run)
    return model, config, json.loads((run / ANOMALY_FILE).read_text())


def detect(model, state: dict, x: np.ndarray, *, device: str = "cpu") -> dict:
    """Reconstruct ``x`` (N, C, H, W) on ``device`` and run every detector: x_hat, maps, {method: (labels, scores)}."""
    x_hat = recon.reconstruct(model, x, device=device)
    maps = recon.error_maps(x, x_hat)
    std = recon.Standardiser.from_state(state["standardiser"])
    fmaps = recon.smooth(maps, state["config"].get("feature_filter", 0))
    es = ErrorSet(maps, std.transform(recon.error_features(fmaps, state["tau"])))
    out = {k: load_detector(k, s).predict(es) for k, s in state["methods"].items()}
    return {"x_hat": x_hat, "maps": maps, "methods": out}


def load_test(test: str | Path, normal_class: str, size: int, preprocess, progress: bool = True):
    """(test images (N, C, H, W), abnormal (N,) bool, keys) with the run's preprocessing."""
    from medfab.data import load_tensors

    test = Path(test)
    if not test.is_dir():
        raise MedfabError(f"--test {test} is not a folder", "give a folder with one sub-folder per class")
    split = "test" if (test / "test").is_dir() else None
    ts = load_tensors(test, size=size, split=split, preprocess=preprocess, progress=progress)
    if normal_class not in ts.classes:
        raise MedfabError(f"the test set {test} has no normal class '{normal_class}' "
                          f"(classes: {', '.join(ts.classes)})",
                          "evaluate on a test set with the same class folders as the training data")
    k = ts.classes.index(normal_class)
    if not (ts.y == k).any():
        raise MedfabError(f"the test set {test} holds no '{normal_class}' images",
                          "add normal images: the metrics need both normal and abnormal ones")
    return np.asarray(ts.x), ts.y != k, list(ts.keys)


def _merge(path: Path, label: str, rows: list[dict], figures: list[dict]) -> dict:
    old = json.loads(path.read_text()) if path.is_file() else {}
    if isinstance(old, list):
        old = {"rows": old}
    keep_rows = [r for r in old.get("rows", []) if r.get("training") != label]
    new_files = {f["file"] for f in figures}
    keep_figs = [f for f in old.get("figures", []) if (f if isinstance(f, str) else f.get("file")) not in new_files]
    return {"rows": keep_rows + rows, "figures": keep_figs + figures, "note": NOTE}


def evaluate_anomaly(run: str | Path, test: str | Path, out: str | Path, *, label: str | None = None,
                     gallery: int = 4, progress: bool = True, device: str = "auto") -> dict:
    """Evaluate the run on ``test``; write ``out``/results.json (merged), PNGs and predictions CSV."""
    from medfab.anomaly import plots
    from medfab.device import resolve_device
    from medfab.training.checkpoint import atomic_write_json

    dev = resolve_device(device)                     # a bad or absent device stops before any work
    model, config, state = read_anomaly_run(run)
    cfg = state["config"]
    x, abnormal, keys = load_test(test, cfg["normal_class"], cfg["size"], config.get("preprocess"), progress)
    label = label or cfg["training"]
    res = detect(model, state, x, device=dev)
    rows = []
    for k, (pred, score) in res["methods"].items():
        m = binary_metrics(abnormal, pred, score)
        rows.append({"method": DISPLAY[k], "training": label, **m, "run": str(Path(run).resolve())})

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)
    roc = plots.roc_figure(abnormal, {DISPLAY[k]: s for k, (_, s) in res["methods"].items()},
                           out / f"roc_{safe}.png", f"ROC, VAE trained on {label} data")
    gal = plots.error_gallery(x, res["x_hat"], res["maps"], abnormal, out / f"error_maps_{safe}.png",
                              per_group=gallery, seed=cfg["seed"], title=f"training: {label}")
    figures = [{"file": roc.name, "caption": f"ROC curves, training data: {label}"},
               {"file": gal.name, "caption": f"input | reconstruction | error map, training data: {label}"}]
    with open(out / f"predictions_{safe}.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["key", "abnormal"] + [f"{k}_{c}" for k in res["methods"] for c in ("label", "score")])
        for i, key in enumerate(keys):
            w.writerow([key, int(abnormal[i])] + [v for p, s in res["methods"].values()
                                                  for v in (int(p[i]), f"{s[i]:.6g}")])
    merged = _merge(out / "results.json", label, rows, figures)
    atomic_write_json(out / "results.json", merged)
    return merged
