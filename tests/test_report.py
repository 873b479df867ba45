"""medfab report: one self-contained HTML page from a (fake but realistic) evaluation folder.

The fixture writes results.json by hand, in the shapes the metric modules return, and draws its figures with
medfab.evaluation.plots, so the report is tested without running any metric.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _report_fixture import make_eval, make_eval_3d
from typer.testing import CliRunner

from medfab.cli.main import app
from medfab.errors import MedfabError
from medfab.evaluation.families import FidelityResult, PrivacyResult, UtilityResult
from medfab.evaluation.results import FamilyResult, Results, clean, read_results, write_results
from medfab.report import sections as S
from medfab.report import verdicts as V
from medfab.report.html import render_report, write_report


def _text(html: str) -> str:
    """The HTML without its embedded images (base64 can contain any letters, 'nan' included)."""
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory):
    return make_eval(tmp_path_factory.mktemp("eval"))


def test_report_is_self_contained_and_complete(eval_dir):
    html = render_report(eval_dir)
    text = _text(html)
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)
    assert "<script" not in text and "<link" not in text
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", html)  # no external assets
    n_png = len(list((eval_dir / "figures").glob("*.png")))
    assert html.count('src="data:image/png;base64,') == n_png
    for heading in (
        "Summary",
        "Samples: synthetic beside real",
        "Fidelity",
        "Diversity",
        "Class fidelity",
        "Utility",
        "Privacy",
        "Configuration",
    ):
        assert heading in text
    # headline and verdicts in plain language
    assert "89% of real" in text
    assert "Warning: ModerateDemented looks collapsed (MS-SSIM 0.62 vs 0.31 real, coverage 20%)" in text
    assert "as close to real as two halves of the real data (JS 0.004 vs 0.003)" in text
    assert "4.0x the real-vs-real one" in text  # FD 12 vs 3
    # interval, mean ± std, and the skipped reason as hover text instead of a NaN
    assert "12 [10.2, 13.8]" in text and "0.620 ± 0.020" in text
    assert 'title="synthetic features: 1 row(s), at least 2 are needed"' in text
    assert "Skipped: radiomic features are computed per 2D image" in text  # a whole feature space


def test_report_renders_in_headless_chromium(eval_dir, tmp_path):
    exe = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
    )
    if exe is None:
        pytest.skip("no chromium binary on PATH (CI installs Debian's `chromium`)")
    from PIL import Image

    page = write_report(eval_dir, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,2000",
            page.resolve().as_uri(),
        ],
        check=False,
        capture_output=True,
        timeout=120,
    )
    assert shot.is_file()
    a = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert a.shape == (2000, 1280)
    assert a.std() > 20  # not a blank page: header, cards, tables and figures


def test_report_3d_section(tmp_path):
    html = render_report(make_eval_3d(tmp_path))
    text = _text(html)
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)
    assert html.count('src="data:image/png;base64,') == 4  # slices, montage, variance maps, distributions
    assert "3D volumes at 64³" in text and "Goals of the 3D study" in text and "Volumes per set" in text
    # the four goals of the issue, in plain language
    assert "vary only 20% as much as real ones" in text and "mode collapse" in text
    assert "more alike than real ones (MS-SSIM 0.930 vs 0.710" in text
    assert "The grey matter volume is distributed unlike real brains (KS 0.90" in text
    assert "1 of 25 synthetic volumes sit closer to a training volume than any held-out real volume" in text
    assert text.count(">not met<") == 4 and text.count(">met<") == 1  # csf met; white matter skipped
    assert 'title="synthetic: 1 value(s); a distribution needs at least 2"' in text
    assert "Voxel variance" in text and "20% of real" in text  # headline card


def test_anomaly_hook(eval_dir, tmp_path):
    d = tmp_path / "eval"
    shutil.copytree(eval_dir, d)
    (d / "anomaly").mkdir()
    shutil.copy(d / "figures" / "utility.png", d / "anomaly" / "roc.png")
    (d / "anomaly" / "results.json").write_text(
        json.dumps(
            {
                "rows": [
                    {
                        "method": "VAE recon. error",
                        "training": "real + synthetic",
                        "accuracy": 0.91,
                        "precision": 0.88,
                        "recall": 0.93,
                        "f1": 0.9,
                    }
                ],
                "figures": ["roc.png", {"file": "missing.png", "caption": "not there"}],
            }
        )
    )
    text = _text(render_report(d))
    assert "Anomaly detection" in text and "VAE recon. error" in text and "0.930" in text
    assert "roc" in text and not re.search(r"\bnan\b", text, re.IGNORECASE)
    assert render_report(eval_dir).count("data:image/png") + 1 == render_report(d).count("data:image/png")


def test_verdict_levels_follow_the_baseline():
    def fid(js_s, js_b, fd_s, fd_b):
        fd = {
            "synth": {"value": fd_s, "lo": fd_s * 0.9, "hi": fd_s * 1.1},
            "baseline": {"value": fd_b, "lo": fd_b * 0.9, "hi": fd_b * 1.1},
        }
        return FidelityResult.model_validate(
            {
                "histograms": {"overall": {"synth": {"js": js_s}, "baseline": {"js": js_b}}},
                "distances": {"pixel": {"overall": {"fd": fd}}},
            }
        )

    good = S.fidelity.verdicts(fid(0.004, 0.003, 1.0, 1.02))
    assert [v.level for v in good] == ["good", "good"]
    bad = S.fidelity.verdicts(fid(0.05, 0.003, 10.0, 1.0))
    assert [v.level for v in bad] == ["warn", "bad"] and "10.0x" in bad[1].text
    # privacy: 20 % near-copies against 5 % between real halves is bad; AUC 0.7 leaks membership
    p = PrivacyResult.model_validate(
        {"synth": {"copy_rate": 0.2, "membership_auc": 0.7}, "baseline": {"copy_rate": 0.05}}
    )
    assert [v.level for v in S.privacy.verdicts(p)] == ["bad", "bad"]
    # a family that did not run gives no verdict, no card (and no crash)
    res = Results(
        classes=["a", "b"], families={"utility": FamilyResult(status="error", data=UtilityResult())}
    )
    assert V.headline(res) == [] and "utility" in render_section_ids(res)


def render_section_ids(res) -> list[str]:
    from medfab.report.html import _family_section

    return [_family_section(n, res, Path(".")).id for n in res.families]


def test_results_schema_cleans_nan_and_checks_version(tmp_path):
    r = Results(
        classes=["a"],
        families={"x": FamilyResult(data={"v": float("nan"), "arr": np.arange(2), "f": np.float32(0.5)})},
    )
    out = r.to_json()["families"]["x"]["data"]
    assert out == {"v": {"skipped": "v is not finite (nan)"}, "arr": [0, 1], "f": 0.5}
    assert clean({"k": [np.inf]}) == {"k": [{"skipped": "k is not finite (inf)"}]}
    write_results(r, tmp_path / "results.json")
    assert read_results(tmp_path).families["x"].data["v"] == {"skipped": "v is not finite (nan)"}
    raw = json.loads((tmp_path / "results.json").read_text())
    raw["schema_version"] = 99
    (tmp_path / "results.json").write_text(json.dumps(raw))
    with pytest.raises(MedfabError, match="schema version 99"):
        read_results(tmp_path)
    raw["schema_version"] = 1  # untyped results of an older medfab: a clear message, not a validation dump
    (tmp_path / "results.json").write_text(json.dumps(raw))
    with pytest.raises(MedfabError, match="older medfab .results schema version 1"):
        read_results(tmp_path)
    with pytest.raises(MedfabError, match="no results.json"):
        read_results(tmp_path / "nowhere")


def test_report_cli(eval_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", str(eval_dir), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 10_000
    r = runner.invoke(app, ["report", str(tmp_path / "missing"), "--out", str(out)])
    assert r.exit_code == 2 and ("no results.json" in r.output or "does not exist" in r.output)


def test_a_spread_of_one_draw_shows_no_interval():
    from medfab.report.tables import pm

    assert pm(0.0123, 0.0, ".3g").text == "0.0123"  # one KID subset or one seed: no "± 0"
    assert pm(0.0123, 1e-15, ".3g").text == "0.0123"
    assert pm(0.0123, None, ".3g").text == "0.0123"
    assert pm(0.62, 0.02).text == "0.620 ± 0.020"
