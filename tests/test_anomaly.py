"""VAE reconstruction-error anomaly detection: detectors, thresholds, metrics, the fit/eval pipeline, errors."""

import json

import numpy as np
import pytest
import torch

from medfab.anomaly import (
    GIAEM,
    AnomalyConfig,
    DBSCANDetector,
    ErrorSet,
    GlobalKMeans,
    SingleKMeans,
    binary_metrics,
    choose_threshold,
    evaluate_anomaly,
    fit_anomaly,
    k_distance_elbow,
    prepare_data,
    two_means_1d,
)
from medfab.anomaly.evaluate import load_test
from medfab.anomaly.recon import Standardiser, error_features
from medfab.errors import MedfabError

VAE = {"width": 16, "latent_dim": 32, "beta": 0.1}


# --- hand-built error sets -------------------------------------------------------------------------------
def _error_set(n_normal: int, n_abnormal: int, seed: int) -> ErrorSet:
    """Normal maps: small uniform noise. Abnormal: the same plus a bright 4x4 blob somewhere."""
    rng = np.random.default_rng(seed)
    maps = rng.uniform(0, 0.1, (n_normal + n_abnormal, 16, 16))
    for i in range(n_normal, n_normal + n_abnormal):
        r, c = rng.integers(0, 12, 2)
        maps[i, r:r + 4, c:c + 4] += rng.uniform(0.6, 1.0)
    abnormal = np.arange(len(maps)) >= n_normal
    return ErrorSet(maps, np.zeros((len(maps), 5)), abnormal)


def _with_features(es: ErrorSet, std: Standardiser | None = None, tau: float = 0.2):
    f = error_features(es.maps, tau)
    std = std or Standardiser().fit(f[~es.abnormal])
    return ErrorSet(es.maps, std.transform(f), es.abnormal), std


@pytest.mark.parametrize("make", [lambda: GIAEM(), lambda: SingleKMeans(),
                                  lambda: DBSCANDetector(), lambda: GlobalKMeans()])
def test_detectors_flag_the_high_error_images_as_positive(make):
    # Polarity check: abnormal (label 1) must be the images with MORE error; a swapped label gives ~0.
    val, std = _with_features(_error_set(60, 0, seed=1))          # validation: normal images only
    test, _ = _with_features(_error_set(30, 30, seed=2), std)
    det = make().fit(val)
    pred, score = det.predict(test)
    m = binary_metrics(test.abnormal, pred, score)
    assert m["recall"] >= 0.9 and m["tn"] >= 21, m           # specificity >= 0.7
    assert m["auc"] >= 0.95
    assert binary_metrics(~test.abnormal, pred, score)["auc"] <= 0.05       # swapped truth: near-inverse


def test_detector_state_round_trips_through_json():
    from medfab.anomaly.methods import load_detector

    val, std = _with_features(_error_set(40, 10, seed=3))
    test, _ = _with_features(_error_set(20, 20, seed=4), std)
    for key, det in {"giaem": GIAEM(), "dbscan": DBSCANDetector(), "kmeans_single": SingleKMeans(),
                     "kmeans_global": GlobalKMeans()}.items():
        det.fit(val)
        again = load_detector(key, json.loads(json.dumps(det.state())))
        for a, b in zip(det.predict(test), again.predict(test)):
            np.testing.assert_allclose(a, b)


# --- building blocks against references ------------------------------------------------------------------
def test_binary_metrics_hand_computed():
    truth = np.array([1, 1, 1, 0, 0, 0, 0, 1], bool)
    pred = np.array([1, 1, 0, 0, 0, 1, 0, 1])
    m = binary_metrics(truth, pred, scores=np.array([.9, .8, .3, .1, .2, .7, .4, .6]))
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (3, 1, 3, 1)
    assert m["accuracy"] == pytest.approx(6 / 8) and m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 4) and m["f1"] == pytest.approx(3 / 4)
    # AUC by hand: of 16 (abnormal, normal) pairs the abnormal score wins 4 + 4 + 2 (0.3) + 3 (0.6) = 13.
    assert m["auc"] == pytest.approx(13 / 16)
    none = binary_metrics(truth, np.zeros(8))
    assert none["precision"] is None and none["recall"] == 0 and none["auc"] is None


def test_two_means_1d_matches_sklearn_kmeans():
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    e = np.concatenate([rng.normal(0.1, 0.03, (6, 200)), rng.normal(0.8, 0.1, (6, 40))], axis=1)
    cut, size = two_means_1d(e)
    for i in range(len(e)):
        km = KMeans(2, n_init=10, random_state=0).fit(e[i][:, None])
        hi = int(np.argmax(km.cluster_centers_[:, 0]))
        assert size[i] == (km.labels_ == hi).sum() == 40
        assert cut[i] == e[i][km.labels_ == hi].min()


def test_choose_threshold_rules():
    s = np.array([1.0, 2.0, 3.0, 4.0, 10.0, 11.0, 12.0])
    ab = np.array([0, 0, 0, 0, 1, 1, 1], bool)
    thr, rule = choose_threshold(s, ab)
    assert rule == "youden" and 4.0 < thr <= 10.0                 # J = 1 between the groups
    thr, rule = choose_threshold(np.arange(101.0), np.zeros(101, bool))
    assert rule == "p95_normal" and thr == pytest.approx(95.0)


def test_k_distance_elbow_finds_the_knee():
    # 50 points on a tight grid (k-distance 1) and 5 far outliers: eps must be the inliers' spacing.
    grid = np.stack(np.meshgrid(np.arange(10.0), np.arange(5.0)), -1).reshape(-1, 2)
    far = np.array([[100.0, 0], [0, 100], [-100, 0], [0, -100], [100, 100]])
    eps = k_distance_elbow(np.concatenate([grid, far]), k=2)
    assert 1.0 <= eps < 2.0


# --- the pipeline on a tiny phantom tumour set -------------------------------------------------------------
@pytest.fixture(scope="module")
def phantom_run(tmp_path_factory):
    from medfab.phantom import make_cohort

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("anomaly")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDFAB_CACHE", str(root / "cache"))
        # T2 contrast only: with mixed T1/T2 subjects a VAE this small and short-trained stays near chance.
        kw = {"size": 32, "dims": 2, "balance": "equal", "contrast": "t2"}
        train = make_cohort("tumor", n=200, seed=0, out=root / "train", **kw)
        test = make_cohort("tumor", n=80, seed=1, out=root / "test", **kw)
        run = fit_anomaly(AnomalyConfig(normal_class="no", size=32, model=VAE), train, root / "run",
                          kimg=10, progress=False)
        res = evaluate_anomaly(run, test, root / "eval" / "anomaly", progress=False)
        res2 = evaluate_anomaly(run, test, root / "eval" / "anomaly", label="synthetic", progress=False)
    return {"root": root, "train": train, "test": test, "run": run, "res": res, "res2": res2}


def test_every_method_beats_chance_on_phantom_tumours(phantom_run):
    rows = phantom_run["res"]["rows"]
    assert {r["method"] for r in rows} == {"GIAEM", "DBSCAN", "single-example KMeans", "global KMeans"}
    for r in rows:
        assert r["n"] == 80 and r["tp"] + r["fp"] + r["tn"] + r["fn"] == 80
        balanced = 0.5 * (r["tp"] / (r["tp"] + r["fn"]) + r["tn"] / (r["tn"] + r["fp"]))
        assert balanced > 0.55, r
        assert r["auc"] > 0.6, r


def test_results_json_has_the_report_shape_and_merges_runs(phantom_run):
    out = phantom_run["root"] / "eval" / "anomaly"
    d = json.loads((out / "results.json").read_text())
    assert len(d["rows"]) == 8 and {r["training"] for r in d["rows"]} == {"real", "synthetic"}
    for r in d["rows"]:
        assert {"method", "training", "accuracy", "precision", "recall", "f1", "auc"} <= set(r)
    files = [f["file"] for f in d["figures"]]
    assert len(files) == len(set(files)) == 4
    for f in files:
        assert (out / f).read_bytes().startswith(b"\x89PNG")
    from medfab.report import tables

    assert len(tables.anomaly(d)[0].rows) == 8
    state = json.loads((phantom_run["run"] / "anomaly.json").read_text())
    assert state["data"]["val_abnormal"] > 0 and state["methods"]["giaem"]["rule"] == "youden"


# --- bad input --------------------------------------------------------------------------------------------
def test_unknown_normal_class_lists_the_classes(phantom_run):
    with pytest.raises(MedfabError, match=r"'healthy'.*no, yes"):
        prepare_data(AnomalyConfig(normal_class="healthy", size=32), phantom_run["train"], None, False)


def test_test_set_without_the_normal_class(phantom_run, tmp_path):
    import shutil

    shutil.copytree(phantom_run["test"] / "yes", tmp_path / "only_yes" / "yes")
    with pytest.raises(MedfabError, match=r"no normal class 'no'.*yes"):
        load_test(tmp_path / "only_yes", "no", 32, None, progress=False)


def test_too_few_images_to_cluster(phantom_run, tmp_path):
    import shutil

    for c in ("no", "yes"):                       # 6 normal images -> 1 validation image: far too few
        (tmp_path / "small" / c).mkdir(parents=True)
        for f in sorted((phantom_run["train"] / c).glob("*.png"))[:6]:
            shutil.copy(f, tmp_path / "small" / c / f.name)
    with pytest.raises(MedfabError, match="needs at least 6"):
        prepare_data(AnomalyConfig(normal_class="no", size=32), tmp_path / "small", None, False)
    es = _error_set(3, 0, seed=0)
    with pytest.raises(MedfabError, match="at least 6 normal validation images"):
        DBSCANDetector().fit(es)
    with pytest.raises(MedfabError, match="at least 2 test images"):
        GlobalKMeans().predict(ErrorSet(es.maps[:1], np.zeros((1, 5))))


def test_cli_reports_bad_normal_class(phantom_run):
    from typer.testing import CliRunner

    from medfab.cli.main import app

    r = CliRunner().invoke(app, ["anomaly", "fit", "--data", str(phantom_run["train"]), "--normal-class",
                                 "healthy", "--out", str(phantom_run["root"] / "bad"), "--kimg", "1",
                                 "--size", "32", "--no-progress"])
    assert r.exit_code == 2 and "healthy" in r.output and "no, yes" in r.output


def test_cli_fit_stops_at_a_cpu_minute_budget(phantom_run):
    """`anomaly fit --cpu-minutes` (the study scripts' budget on a shared machine) trains, stops and records it."""
    import json

    from typer.testing import CliRunner

    from medfab.cli.main import app

    out = phantom_run["root"] / "cpu_budget"
    r = CliRunner().invoke(app, ["anomaly", "fit", "--data", str(phantom_run["train"]), "--normal-class", "no",
                                 "--out", str(out), "--cpu-minutes", "0.02", "--size", "32", "--set", "width=8",
                                 "--no-progress"])
    assert r.exit_code == 0, r.output
    assert (out / "anomaly.json").is_file()
    assert json.loads((out / "config.json").read_text())["training"]["cpu_minutes"] == 0.02


def test_training_kinds_pick_real_synthetic_or_both(phantom_run):
    real, syn = phantom_run["train"], phantom_run["test"]      # the test cohort stands in for fabricated images
    n = {}
    for kind in ("real", "synthetic", "mixed"):
        tr, val, _ = prepare_data(AnomalyConfig(normal_class="no", size=32, training=kind), real, syn, False)
        n[kind] = len(tr)
        assert (tr.y == 0).all() and tr.classes == ["no"]
        assert len(val) == 40 and val.y.sum() == 20              # validation is always real: 20 % of each class
    assert (n["real"], n["synthetic"], n["mixed"]) == (80, 40, 120)
    with pytest.raises(MedfabError, match="needs synthetic images"):
        prepare_data(AnomalyConfig(normal_class="no", size=32, training="mixed"), real, None, False)


def test_cli_eval_writes_results_and_prints_the_table(phantom_run):
    from typer.testing import CliRunner

    from medfab.cli.main import app

    out = phantom_run["root"] / "cli_eval"
    r = CliRunner().invoke(app, ["anomaly", "eval", "--run", str(phantom_run["run"]), "--test",
                                 str(phantom_run["test"]), "--out", str(out), "--label", "cli", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "GIAEM" in r.output and "DBSCAN" in r.output          # (narrow terminal: long names wrap)
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [x["training"] for x in rows] == ["cli"] * 4
    # Same run, same test set: the CLI reproduces the library call exactly.
    lib = {x["method"]: x["f1"] for x in phantom_run["res"]["rows"]}
    assert {x["method"]: x["f1"] for x in rows} == lib
