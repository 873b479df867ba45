"""`medfab report EVAL --review REVIEW_DIR`: the expert-review section of the HTML report."""

from __future__ import annotations

import re

from _report_fixture import make_eval
from _review_data import make_folders
from typer.testing import CliRunner

from medfab.cli.main import app
from medfab.review.db import ReviewDB
from medfab.review.selection import ensure_selection


def test_report_with_review_section(tmp_path):
    eval_dir = make_eval(tmp_path / "eval")
    real, synth = make_folders(tmp_path, per_class=5)
    out = tmp_path / "review"
    db = ReviewDB(out, create=True)
    ensure_selection(db, real, synth, n=10, seed=0)
    a, b = db.add_reviewer("reader-1"), db.add_reviewer("reader-2")
    for i, it in enumerate(db.items()):
        db.save_answer(a.id, it.id, it.source, it.label, 4, "")
        db.save_answer(b.id, it.id, "real" if i % 2 else "synthetic", it.label, 3 if it.source == "real" else 2, "")
    html_path = tmp_path / "report.html"
    r = CliRunner().invoke(app, ["report", str(eval_dir), "--review", str(out), "--out", str(html_path)])
    assert r.exit_code == 0, r.output
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html_path.read_text())
    assert 'id="review"' in text and "Expert review" in text and "reader-1" in text and "reader-2" in text
    assert "Real or synthetic? (chance = 50 %)" in text and "Fleiss" in text and "Mann–Whitney" in text
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)
    assert (out / "results.json").is_file()

    missing = CliRunner().invoke(app, ["report", str(eval_dir), "--review", str(tmp_path / "nope"), "--out",
                                       str(tmp_path / "r2.html")])
    assert missing.exit_code == 2 and "holds no review" in " ".join(missing.output.split())
