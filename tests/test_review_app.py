"""The review web app in-process (Flask test client): answers, resume, and every refusal (bad token, path
traversal, SQL injection, CSRF, bad form values), plus the CLI's errors."""

from __future__ import annotations

import io
import socket
import sqlite3

import pytest
from _review_data import CLASSES, SECRET_NAME, form_fields, make_folders
from PIL import Image

from medfab.errors import MedfabError
from medfab.review.app import create_app
from medfab.review.db import ReviewDB
from medfab.review.selection import ensure_selection


@pytest.fixture
def review(tmp_path):
    real, synth = make_folders(tmp_path, per_class=6, nifti_real=2)
    out = tmp_path / "review"
    db = ReviewDB(out, create=True)
    ensure_selection(db, real, synth, n=12, seed=3)
    alice, bob = db.add_reviewer("alice"), db.add_reviewer("bob")
    return out, db, alice.token, bob.token


def _answer(client, token, page_html, **over):
    data = {**form_fields(page_html), "says": "real", "label": CLASSES[0], "quality": "3", "comment": "", **over}
    return client.post(f"/r/{token}/answer", data=data)


def test_selection_is_balanced_stratified_and_fixed(tmp_path):
    real, synth = make_folders(tmp_path, per_class=10)
    out = tmp_path / "review"
    s = ensure_selection(ReviewDB(out, create=True), real, synth, n=12, seed=0)
    assert s.created and s.n == 12
    assert s.per_class == {"real": {"no": 3, "yes": 3}, "synthetic": {"no": 3, "yes": 3}}
    first = [(it.path, it.source) for it in ReviewDB(out).items()]
    again = ensure_selection(ReviewDB(out), real, synth, n=50, seed=9)  # a restart keeps the stored selection
    assert not again.created and [(it.path, it.source) for it in ReviewDB(out).items()] == first
    other = tmp_path / "other"
    ensure_selection(ReviewDB(other, create=True), real, synth, n=12, seed=0)
    assert sorted(it.path for it in ReviewDB(other).items()) == sorted(p for p, _ in first)  # seeded


def test_answer_flow_resume_and_done(review):
    out, db, alice, bob = review
    client = create_app(out).test_client()
    page = client.get(f"/r/{alice}").get_data(as_text=True)
    assert "1 / 12" in page
    seen = set()
    for i in range(12):
        html = client.get(f"/r/{alice}").get_data(as_text=True)  # a reload continues where alice stopped
        assert f"{i + 1} / 12" in html
        seen.add(form_fields(html)["item"])
        r = _answer(client, alice, html, says="synthetic" if i % 2 else "real", quality=str(1 + i % 5))
        assert r.status_code == 303
        # the same answer again (double click) is not stored twice
        assert _answer(client, alice, html).status_code == 303
    assert len(seen) == 12
    assert "Thank you" in client.get(f"/r/{alice}").get_data(as_text=True)
    assert len([a for a in db.answers() if a.reviewer == "alice"]) == 12
    bob_page = client.get(f"/r/{bob}").get_data(as_text=True)  # bob's progress is his own
    assert "1 / 12" in bob_page


def test_pages_show_no_names_paths_or_truth(review):
    out, db, alice, _ = review
    client = create_app(out).test_client()
    html = client.get(f"/r/{alice}").get_data(as_text=True)
    for secret in (SECRET_NAME, str(out.parent), ".png", ".nii", "synth/"):
        assert secret not in html
    for it in db.items():
        if it.ndim == 2:
            r = client.get(f"/r/{alice}/img/{it.public_id}")
        else:
            r = client.get(f"/r/{alice}/img/{it.public_id}/2/0")
            assert client.get(f"/r/{alice}/img/{it.public_id}/0/7").status_code == 200
            assert client.get(f"/r/{alice}/img/{it.public_id}/0/8").status_code == 404  # past the last slice
            assert client.get(f"/r/{alice}/img/{it.public_id}/3/0").status_code == 404
        assert r.status_code == 200 and r.mimetype == "image/png"
        assert SECRET_NAME.encode() not in r.data and b"synthetic" not in r.data
        im = Image.open(io.BytesIO(r.data))
        assert im.mode == "L" and not im.text  # re-encoded: no text chunks at all
    assert {it.ndim for it in db.items()} == {2, 3}


@pytest.mark.parametrize("path", [
    "/r/{t}/img/..%2F..%2F..%2Fetc%2Fpasswd",
    "/r/{t}/img/../../../../etc/passwd",
    "/r/{t}/img/%2e%2e/%2e%2e/etc/passwd",
    "/r/{t}/img/{path}",
    "/static/../../pyproject.toml",
    "/r/{t}/../../review.sqlite",
    "/review.sqlite",
    "/r/{t}/img/' OR '1'='1",
    "/r/' OR '1'='1",
    "/r/{t}' OR 1=1 --",
])
def test_traversal_and_injection_paths_are_refused(review, path):
    out, db, alice, _ = review
    client = create_app(out).test_client()
    url = path.format(t=alice, path=db.items()[0].path.lstrip("/"))
    r = client.get(url)
    assert 400 <= r.status_code < 500
    assert r.mimetype == "text/plain" and b"Traceback" not in r.data and b"root:" not in r.data


def test_token_guessing_is_refused(review):
    out, db, alice, _ = review
    client = create_app(out).test_client()
    item = db.items()[0].public_id
    for bad in ["x", alice[:-1], alice[:-1] + ("A" if alice[-1] != "A" else "B"), alice.upper(), "a" * 43,
                "%00", "a" * 500]:
        assert client.get(f"/r/{bad}").status_code == 404
        assert client.get(f"/r/{bad}/img/{item}").status_code == 404
        assert client.post(f"/r/{bad}/answer", data={"says": "real"}).status_code == 404
    assert client.get("/").status_code == 200 and alice.encode() not in client.get("/").data


def test_sql_injection_in_form_is_stored_as_text_or_refused(review):
    out, _, alice, _ = review
    client = create_app(out).test_client()
    html = client.get(f"/r/{alice}").get_data(as_text=True)
    evil = "'); DROP TABLE answers; --"
    assert _answer(client, alice, html, item=evil).status_code == 404
    assert _answer(client, alice, html, label=evil).status_code == 400
    assert _answer(client, alice, html, comment=evil).status_code == 303
    con = sqlite3.connect(out / "review.sqlite")
    assert con.execute("SELECT comment FROM answers").fetchall() == [(evil,)]  # stored verbatim, tables intact
    assert con.execute("SELECT count(*) FROM items").fetchone()[0] == 12


@pytest.mark.parametrize("over,code", [
    ({"says": "maybe"}, 400), ({"says": ""}, 400), ({"label": "not-a-class"}, 400),
    ({"quality": "0"}, 400), ({"quality": "6"}, 400), ({"quality": "3.5"}, 400), ({"quality": "x"}, 400),
    ({"quality": ""}, 400), ({"comment": "x" * 2001}, 400), ({"item": "nope"}, 404),
    ({"csrf": "forged"}, 403), ({"csrf": ""}, 403),
])
def test_bad_form_values_get_4xx(review, over, code):
    out, db, alice, _ = review
    client = create_app(out).test_client()
    html = client.get(f"/r/{alice}").get_data(as_text=True)
    r = _answer(client, alice, html, **over)
    assert r.status_code == code and r.mimetype == "text/plain" and b"Traceback" not in r.data
    assert db.answers() == []


def test_csrf_needs_the_session_cookie(review):
    out, db, alice, _ = review
    app = create_app(out)
    html = app.test_client().get(f"/r/{alice}").get_data(as_text=True)
    r = _answer(app.test_client(), alice, html)  # another browser, same form fields: no session, refused
    assert r.status_code == 403 and db.answers() == []


def test_oversized_body_and_wrong_method(review):
    out, _, alice, _ = review
    client = create_app(out).test_client()
    assert client.post(f"/r/{alice}/answer", data={"comment": "x" * 100_000}).status_code == 413
    assert client.get(f"/r/{alice}/answer").status_code == 405
    assert client.post(f"/r/{alice}").status_code == 405


def test_security_headers(review):
    out, _, alice, _ = review
    r = create_app(out).test_client().get(f"/r/{alice}")
    assert r.headers["Referrer-Policy"] == "no-referrer" and "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert "HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Strict" in r.headers["Set-Cookie"]


# ---- CLI errors: one message with a hint, exit code 2, no traceback ----

class _Run:
    def __init__(self, r):
        self.returncode, self.stderr = r.exit_code, " ".join(r.output.split())


def _cli(*args):
    from typer.testing import CliRunner

    from medfab.cli.main import app

    return _Run(CliRunner().invoke(app, list(args)))


def test_cli_errors_are_friendly(tmp_path):
    real, synth = make_folders(tmp_path, per_class=2)
    (tmp_path / "empty").mkdir()
    cases = [
        ("review", "serve", "--real", str(tmp_path / "missing"), "--synthetic", str(synth), "--out", str(tmp_path / "r1")),
        ("review", "serve", "--real", str(real), "--synthetic", str(tmp_path / "empty"), "--out", str(tmp_path / "r2")),
        ("review", "results", str(tmp_path / "nowhere")),
        ("review", "serve", "--real", str(real), "--synthetic", str(synth), "--out", str(tmp_path / "r3"), "--n", "1"),
        ("review", "serve", "--real", str(real), "--synthetic", str(synth), "--out", str(tmp_path / "r4"),
         "--port", "70000"),
        ("review", "add-reviewer", str(tmp_path / "r5"), " "),
        ("review", "add-reviewer", str(real / "no" / next(iter(sorted(p.name for p in (real / "no").iterdir())))), "x"),
        ("review", "serve", "--real", str(real), "--synthetic", str(synth), "--out", str(synth / "manifest.csv")),
    ]
    for args in cases:
        r = _cli(*args)
        assert r.returncode == 2, r.stderr
        assert "error:" in r.stderr and "what to do:" in r.stderr and "Traceback" not in r.stderr


def test_port_in_use_is_a_friendly_error(tmp_path):
    real, synth = make_folders(tmp_path, per_class=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _cli("review", "serve", "--real", str(real), "--synthetic", str(synth), "--out", str(tmp_path / "r"),
                 "--port", str(port))
    assert r.returncode == 2 and "port" in r.stderr and "what to do:" in r.stderr and "Traceback" not in r.stderr


def test_duplicate_reviewer_and_bad_db(tmp_path):
    out = tmp_path / "r"
    db = ReviewDB(out, create=True)
    db.add_reviewer("ann")
    with pytest.raises(MedfabError, match="already exists"):
        db.add_reviewer("ann")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "review.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(MedfabError, match="cannot open"):
        ReviewDB(bad)
