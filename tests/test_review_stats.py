"""Review statistics against references: scipy's binomtest interval, the Fleiss (1971) worked example,
scipy's Mann-Whitney U; and `medfab review results` on a review with known answers."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from _review_data import make_folders, medfab_cmd
from scipy.stats import binomtest, mannwhitneyu

from medfab.review import stats
from medfab.review.db import ReviewDB
from medfab.review.results import compute_results
from medfab.review.selection import ensure_selection


@pytest.mark.parametrize("k,n", [(0, 10), (1, 10), (5, 10), (10, 10), (54, 100), (37, 80), (999, 2000)])
def test_clopper_pearson_matches_scipy_binomtest(k, n):
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    lo, hi = stats.clopper_pearson(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-9) and hi == pytest.approx(ref.high, abs=1e-9)
    assert stats.binomial_p(k, n) == pytest.approx(binomtest(k, n, 0.5).pvalue)


def test_fleiss_kappa_wikipedia_worked_example():
    # Fleiss (1971) as worked on Wikipedia ("Fleiss' kappa"): 10 subjects, 14 raters, 5 categories.
    table = np.array([
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ])
    # By hand: P_bar = 0.378, P_e = 0.213 (p_j = .143 .200 .279 .150 .229), kappa = (0.378-0.213)/(1-0.213)
    assert stats.fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)
    assert stats.fleiss_kappa(np.array([[3, 0], [0, 3], [3, 0]])) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        stats.fleiss_kappa(np.array([[2, 0], [1, 0]]))


def test_quality_helpers_match_scipy():
    x, y = [5, 4, 4, 5, 3, 4], [2, 3, 3, 1, 4]
    assert stats.mann_whitney_p(x, y) == pytest.approx(mannwhitneyu(x, y, alternative="two-sided").pvalue)
    assert stats.mann_whitney_p([3, 3], [3]) == 1.0 and stats.mann_whitney_p([], [1]) is None
    m, sd = stats.mean_sd(x)
    assert m == pytest.approx(np.mean(x)) and sd == pytest.approx(np.std(x, ddof=1))


def test_results_on_known_answers(tmp_path):
    real, synth = make_folders(tmp_path, per_class=5)
    out = tmp_path / "review"
    db = ReviewDB(out, create=True)
    ensure_selection(db, real, synth, n=8, seed=1)
    perfect, guesser, silent = db.add_reviewer("perfect"), db.add_reviewer("always-real"), db.add_reviewer("silent")
    for it in db.items():
        db.save_answer(perfect.id, it.id, it.source, it.label, 5 if it.source == "real" else 2, "")
        db.save_answer(guesser.id, it.id, "real", "no", 3, "")
    res = compute_results(db)
    p, g = {r.name: r for r in res.reviewers}["perfect"], {r.name: r for r in res.reviewers}["always-real"]
    assert p.detection.accuracy == 1.0 and p.detection.sensitivity == 1.0 and p.detection.specificity == 1.0
    assert p.detection.beats_chance and p.class_accuracy_real == 1.0 and p.class_accuracy_synthetic == 1.0
    assert g.detection.accuracy == 0.5 and g.detection.sensitivity == 0.0 and g.detection.specificity == 1.0
    assert not g.detection.beats_chance
    assert p.quality.real_mean == 5 and p.quality.synthetic_mean == 2 and p.quality.real_sd == 0
    assert p.quality.mann_whitney_p < 0.05
    assert res.pooled.detection.n == 16 and res.pooled.detection.correct == 12
    assert set(res.pooled.per_class) == {"no", "yes"} and res.pooled.per_class["no"].n == 8
    assert res.kappa_raters == 2 and res.kappa_images == 8
    # agreement on real/synthetic: 4 images both say real, 4 split -> the formula by hand
    table = np.array([[2, 0]] * 4 + [[1, 1]] * 4)
    assert res.fleiss_kappa == pytest.approx(stats.fleiss_kappa(table))
    r = subprocess.run(medfab_cmd("review", "results", str(out), "--json"), capture_output=True, text=True, check=True)
    data = json.loads(r.stdout)
    assert data == json.loads((out / "results.json").read_text())
    assert data["pooled"]["detection"]["accuracy"] == 0.75
    assert [x["name"] for x in data["reviewers"]] == ["perfect", "always-real", "silent"]
    from typer.testing import CliRunner

    from medfab.cli.main import app

    table_out = CliRunner().invoke(app, ["review", "results", str(out)])
    assert table_out.exit_code == 0
    assert "pooled" in table_out.output and "Fleiss" in table_out.output and silent.name in table_out.output
