"""bench/study_tables.py: the study tables read results.json files of `medfab evaluate` / `medfab anomaly eval`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "bench" / "study_tables.py"


@pytest.fixture(scope="module")
def st():
    spec = importlib.util.spec_from_file_location("study_tables", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _metrics(acc: float, p_yes: float, r_yes: float, f_yes: float, recall: dict | None = None) -> dict:
    recall = recall or {"no": 0.5, "yes": r_yes}
    return {"accuracy": acc, "balanced_accuracy": acc, "macro_precision": p_yes, "macro_recall": r_yes,
            "macro_f1": f_yes, "precision": {"no": 0.5, "yes": p_yes}, "recall": recall,
            "f1": {"no": 0.5, "yes": f_yes}}


def _evaluation(tmp: Path, name: str, synth_acc: float = 0.6) -> Path:
    """A tiny results.json in the shape `medfab evaluate` writes (utility, class, fidelity, privacy)."""
    regimes = {"real": {"mean": _metrics(0.98, 0.97, 0.99, 0.98)},
               "synthetic": {"mean": _metrics(synth_acc, 0.55, 0.75, 0.6)},
               "real+synthetic": {"mean": _metrics(0.985, 0.98, 0.99, 0.985)}}
    fam = {
        "utility": {"status": "ok", "data": {"regimes": regimes}},
        "class": {"status": "ok", "data": {"balanced_accuracy": 0.7, "recognition_rate": {"no": 0.8, "yes": 0.6},
                                           "real_test_baseline": {"balanced_accuracy": 0.9,
                                                                  "recognition_rate": {"no": 0.95, "yes": 0.85}}}},
        "fidelity": {"status": "ok", "data": {
            "histograms": {"overall": {"synth": {"js": 0.12, "w1": 0.05}, "baseline": {"js": 0.01, "w1": 0.004}},
                           "yes": {"synth": {"js": {"skipped": "too few"}, "w1": 0.2}, "baseline": {}}},
            "brain_mass": {"threshold": 0.1, "groups": {"overall": {
                "synth": {"ks": 0.3, "w1": 0.02, "real_mean": 0.45, "synth_mean": 0.41},
                "baseline": {"ks": 0.05}}}}}},
        "privacy": {"status": "ok", "data": {"synth": {"copy_rate": 0.004}, "baseline": {"copy_rate": 0.05}}},
        "diversity": {"status": "skipped", "reason": "not asked", "data": {}},
    }
    d = tmp / name
    d.mkdir()
    (d / "results.json").write_text(json.dumps({"schema": "medfab.evaluation", "schema_version": 1,
                                                "classes": ["no", "yes"], "families": fam}))
    return d


def _anomaly(tmp: Path) -> Path:
    d = tmp / "anomaly"
    d.mkdir()
    rows = [{"method": "global KMeans", "training": "real", "accuracy": 0.8, "precision": 0.75, "recall": None,
             "f1": 0.7, "auc": 0.85},
            {"method": "GIAEM", "training": "mixed", "accuracy": 0.9, "precision": 0.9, "recall": 0.9,
             "f1": 0.9, "auc": 0.95}]
    (d / "results.json").write_text(json.dumps({"rows": rows, "figures": [], "note": ""}))
    return d


def _row(text: str, *cells: str) -> str:
    """The one table line that starts with these cells."""
    start = "| " + " | ".join(cells) + " |"
    hits = [line for line in text.splitlines() if line.startswith(start)]
    assert len(hits) == 1, (start, text)
    return hits[0]


def test_br35h_tables_beside_the_published_study(st, tmp_path, capsys):
    ev, an = _evaluation(tmp_path, "eval_gan"), _anomaly(tmp_path)
    st.main(["br35h", "--cnn", f"GAN per class={ev}", "--anomaly", str(an)])
    out = capsys.readouterr().out
    assert "| study (published, random split) | real | 96.67 | 95.42 | 97.99 | 96.69 |" in out
    # positive class 'yes': precision / recall / F1 of that class, accuracy overall; ratios to real
    _row(out, "medfab: GAN per class", "real", "98.00", "97.00", "99.00", "98.00")
    line = _row(out, "medfab: GAN per class", "synthetic", "60.00", "55.00", "75.00", "60.00")
    assert "| 0.61 | 0.61 | 0.40 |" in line            # 0.60 / 0.98, 0.60 / 0.98, 0.4 % near-copies
    _row(out, "medfab: GAN per class", "mixed", "98.50")
    # detectors sorted by method then training kind; an undefined figure (None) prints "-"; study accuracy beside
    assert _row(out, "global KMeans", "real").endswith("| 80.00 | 75.00 | - | 70.00 | 0.850 | 82.93 |")
    assert _row(out, "GIAEM", "mixed").endswith("| 81.24 |")


def test_alzheimer_tables_pick_fidelity_and_utility(st, tmp_path, capsys):
    ev = _evaluation(tmp_path, "eval_pix2pix")
    st.main(["alzheimer", "--eval", f"pix2pix={ev}", "--minority", "yes"])
    out = capsys.readouterr().out
    # overall: recognition 0.7 vs real test 0.9; histogram JS / W1 and brain mass beside real-vs-real
    assert _row(out, "pix2pix", "overall").startswith(
        "| pix2pix | overall | 0.700 | 0.900 | 0.120 | 0.010 | 0.050 | 0.004 | 0.300 | 0.050 | 0.450 | 0.410 |")
    # a skipped value and a missing group print "-", never crash
    assert _row(out, "pix2pix", "yes").startswith("| pix2pix | yes | 0.600 | 0.850 | - | - | 0.200 | - |")
    assert _row(out, "pix2pix", "synthetic") == "| pix2pix | synthetic | 0.600 | 0.600 | 0.61 | 0.61 | 0.750 | 0.004 | 0.050 |"
    _row(out, "pix2pix", "real+synthetic", "0.985", "0.985")


def test_minutes_table_sorted_by_model_and_minutes_with_kimg(st, tmp_path, capsys):
    evals = []
    for model, minutes, acc in (("vae", "10", 0.7), ("dcgan", "10", 0.65), ("dcgan", "5", 0.55)):
        run = tmp_path / f"{model}_{minutes}"
        run.mkdir()
        loop = {"loop": {"cpu_seconds": 90.0}} if model == "vae" else {}     # older checkpoints have no CPU time
        (run / "checkpoint.json").write_text(json.dumps({"kimg": float(minutes) * 2, "step": 1, **loop}))
        ev = _evaluation(run, "eval", synth_acc=acc)
        evals += ["--eval", f"{model}@{minutes}={ev}"]
    st.main(["minutes", *evals])
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(("| dcgan", "| vae"))]
    assert [ln.split(" | ")[:4] for ln in lines] == [["| dcgan", "5", "-", "10.0"], ["| dcgan", "10", "-", "20.0"],
                                                     ["| vae", "10", "1.5", "20.0"]]
    assert lines[0].split(" | ")[5] == "0.550"        # synthetic-only balanced accuracy


def test_minutes_plot_ratio_against_cpu_minutes(st, tmp_path, capsys):
    evals = []
    for model, minutes, acc, cpu in (("vae", "30", 0.49, 1800.0), ("vae", "5", 0.392, None)):
        run = tmp_path / f"{model}_{minutes}"
        run.mkdir()
        loop = {"loop": {"cpu_seconds": cpu}} if cpu else {}
        (run / "checkpoint.json").write_text(json.dumps({"kimg": 1.0, "step": 1, **loop}))
        ev = _evaluation(run, "eval", synth_acc=acc)
        res = json.loads((ev / "results.json").read_text())
        res["families"]["utility"]["data"]["regimes"]["synthetic"]["std"] = {"balanced_accuracy": 0.098}
        (ev / "results.json").write_text(json.dumps(res))
        evals += ["--eval", f"{model}@{minutes}={ev}"]
    png = tmp_path / "curve.png"
    st.main(["minutes", *evals, "--plot", str(png)])
    assert f"plot: {png}" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [(lab, json.loads((Path(p) / "results.json").read_text()), st.checkpoint_record(p))
            for lab, p in st.labelled(evals[1::2])]
    # real BA is 0.98: x from the CPU time (30.0) or, without one, the label (5); error bar = std / real
    assert st.minutes_points(rows) == {"vae": [(5.0, pytest.approx(0.4), pytest.approx(0.1)),
                                               (30.0, pytest.approx(0.5), pytest.approx(0.1))]}


def test_missing_results_say_which_step_to_run(st, tmp_path):
    with pytest.raises(SystemExit, match="run the evaluation step first"):
        st.main(["br35h", "--cnn", f"x={tmp_path / 'nothing'}"])
