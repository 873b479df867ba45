"""The review web app (Flask): one image at a time, real or synthetic, class, quality 1-5, comment.

URLs (every one carries the reviewer's token; nothing is served without it)::

    GET  /r/<token>                         the next unanswered image, or "done"
    POST /r/<token>/answer                  store one answer (CSRF token checked), then 303 to the page
    GET  /r/<token>/img/<id>                a 2D image as PNG
    GET  /r/<token>/img/<id>/<axis>/<i>     slice i along axis (0, 1, 2) of a 3D image

``<id>`` is an opaque random id from the selection; paths, file names and the truth never reach the page.
Errors are plain-text 4xx/5xx responses (no tracebacks, no debug pages). CSS and JavaScript are inlined in
the page, so there is no static-file route at all.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from pathlib import Path

from medfab.review.db import Item, ReviewDB
from medfab.review.selection import classes as stored_classes
from medfab.review.selection import reviewer_order

_HERE = Path(__file__).parent
MAX_COMMENT = 2000
# Letters that pick a class (r, s are taken by real/synthetic)
CLASS_KEYS = "abcdefghijklmnopqtuvwxyz"
log = logging.getLogger("medfab.review")


def create_app(review_dir: str | Path):
    from flask import Flask, Response, abort, redirect, render_template, request, session
    from werkzeug.exceptions import HTTPException

    db = ReviewDB(review_dir)
    items = db.items()
    by_public = {it.public_id: it for it in items}
    ids = [it.id for it in items]
    by_id = {it.id: it for it in items}
    seed = int(db.get_meta("seed") or 0)
    labels = stored_classes(db)
    css = (_HERE / "static" / "review.css").read_text(encoding="utf-8")
    js = (_HERE / "static" / "review.js").read_text(encoding="utf-8")

    app = Flask("medfab.review", template_folder=str(_HERE / "templates"), static_folder=None)
    app.config.update(
        SECRET_KEY=db.secret_key(),
        SESSION_COOKIE_NAME="medfab_review",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        MAX_CONTENT_LENGTH=64 * 1024,
        PROPAGATE_EXCEPTIONS=False,
        TRAP_HTTP_EXCEPTIONS=False,
    )
    app.debug = False

    def plain(text: str, code: int) -> Response:
        return Response(text + "\n", status=code, mimetype="text/plain")

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        return plain(e.description if isinstance(e.description, str) else e.name, e.code or 500)

    @app.errorhandler(Exception)
    def any_error(e: Exception):
        log.exception("review app error")  # the server's log only; the browser gets one plain line
        return plain("internal error: the server could not answer this request", 500)

    @app.after_request
    def headers(resp: Response) -> Response:
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"  # links carry tokens
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Content-Security-Policy"] = (
            "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
        return resp

    def reviewer_or_404(token: str):
        r = db.reviewer_by_token(token) if len(token) < 200 else None
        if r is None:
            abort(404, "unknown link: ask the organiser of the review for your personal link")
        return r

    def csrf_token() -> str:
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        return session["csrf"]

    def next_item(reviewer_id: int) -> tuple[Item | None, int]:
        done = db.answered_ids(reviewer_id)
        for item_id in reviewer_order(ids, seed, reviewer_id):
            if item_id not in done:
                return by_id[item_id], len(done)
        return None, len(done)

    @app.get("/")
    def index():
        return plain("medfab review: open the personal link you were given.", 200)

    @app.get("/r/<token>")
    def page(token: str):
        from medfab.review.render import volume_shape

        r = reviewer_or_404(token)
        item, n_done = next_item(r.id)
        if item is None:
            return render_template("done.html", total=len(items), css=css)
        shape = volume_shape(item) if item.ndim == 3 else None
        return render_template(
            "review.html", token=token, item=item.public_id, shape=shape, position=n_done + 1, total=len(items),
            classes=[(c, CLASS_KEYS[i] if i < len(CLASS_KEYS) else "") for i, c in enumerate(labels)],
            csrf=csrf_token(), max_comment=MAX_COMMENT, css=css, js=js,
        )

    @app.post("/r/<token>/answer")
    def answer(token: str):
        r = reviewer_or_404(token)
        f = request.form
        expected = session.get("csrf")
        if not expected or not hmac.compare_digest(str(f.get("csrf", "")).encode(), expected.encode()):
            abort(403, "the form has expired or did not come from this review: reload the page and answer again")
        item = by_public.get(f.get("item", ""))
        if item is None:
            abort(404, "unknown image")
        says, label, quality, comment = f.get("says"), f.get("label"), f.get("quality", ""), f.get("comment", "")
        if says not in ("real", "synthetic"):
            abort(400, "choose 'real' or 'synthetic'")
        if label not in labels:
            abort(400, "choose one of the listed classes")
        if quality not in ("1", "2", "3", "4", "5"):
            abort(400, "quality must be a whole number from 1 to 5")
        if len(comment) > MAX_COMMENT:
            abort(400, f"the comment is longer than {MAX_COMMENT} characters")
        db.save_answer(r.id, item.id, says, label, int(quality), comment.strip())
        return redirect(f"/r/{token}", code=303)

    def image_or_404(public_id: str, ndim: int) -> Item:
        item = by_public.get(public_id)
        if item is None or item.ndim != ndim:
            abort(404, "unknown image")
        return item

    @app.get("/r/<token>/img/<public_id>")
    def image2d(token: str, public_id: str):
        from medfab.review.render import render

        reviewer_or_404(token)
        return Response(render(image_or_404(public_id, 2)), mimetype="image/png")

    @app.get("/r/<token>/img/<public_id>/<int:axis>/<int:index>")
    def slice3d(token: str, public_id: str, axis: int, index: int):
        from medfab.review.render import render, volume_shape

        reviewer_or_404(token)
        item = image_or_404(public_id, 3)
        shape = volume_shape(item)
        if axis not in (0, 1, 2) or not 0 <= index < shape[axis]:
            abort(404, "no such slice")
        return Response(render(item, axis, index), mimetype="image/png")

    return app
