"""A reviewer in a real browser (headless Debian chromium through Playwright): 10 images, some answered with
the keyboard and some with the mouse, a 3D volume's slider moved, the page reloaded half-way; then the stored
answers and `medfab review results` are checked against what was clicked."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess

import pytest
from _review_data import CLASSES, free_port, make_folders, medfab_cmd, start_server, write_nifti, write_png

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency: pip install -e .[dev]")

CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser")) if p
                 and os.path.exists(p)), None)


def _folders(root):
    real, synth = make_folders(root, per_class=3)
    for c in CLASSES:  # real: 2 PNG + 1 volume per class; 5 real images picked as 3 + 2 -> a volume is shown
        (real / c / max((real / c).iterdir()).name).unlink()
        write_nifti(real / c / "vol.nii.gz", seed=len(c))
    write_png(synth / "no" / "extra.png", 1)
    return real, synth


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (CI installs Debian's `chromium`; apt-get install chromium)")
def test_review_in_a_browser(tmp_path):
    real, synth = _folders(tmp_path)
    out, port = tmp_path / "review", free_port()
    server = start_server(real, synth, out, port, n=10)
    try:
        link = subprocess.run(medfab_cmd("review", "add-reviewer", str(out), "dr-a"), capture_output=True,
                              text=True, check=True).stdout.strip().splitlines()[-1]
        assert link.startswith(f"http://127.0.0.1:{port}/r/")
        given = _click_through(link)
    finally:
        server.kill()
        server.wait(10)

    con = sqlite3.connect(out / "review.sqlite")
    stored = {pid: (s, lab, q, com) for pid, s, lab, q, com in con.execute(
        "SELECT i.public_id, a.says, a.label, a.quality, a.comment FROM answers a JOIN items i ON i.id = a.item_id")}
    assert stored == given
    truth = dict(con.execute("SELECT public_id, source FROM items"))
    correct = sum(s == truth[pid] for pid, (s, *_) in given.items())
    r = subprocess.run(medfab_cmd("review", "results", str(out), "--json"), capture_output=True, text=True, check=True)
    res = json.loads(r.stdout)
    assert res["pooled"]["detection"]["n"] == 10 and res["pooled"]["detection"]["correct"] == correct
    assert res["reviewers"][0]["name"] == "dr-a" and res["reviewers"][0]["answered"] == 10


def _click_through(link: str) -> dict[str, tuple[str, str, int, str]]:
    given: dict[str, tuple[str, str, int, str]] = {}
    saw_volume = False
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        page.set_default_timeout(15_000)
        page.goto(link)
        for i in range(10):
            progress = page.locator("#progress")
            sync_api.expect(progress).to_have_text(f"{i + 1} / 10")
            if i == 4:  # come back later: the same image, the same progress
                before = page.locator('input[name="item"]').get_attribute("value")
                page.reload()
                sync_api.expect(progress).to_have_text("5 / 10")
                assert page.locator('input[name="item"]').get_attribute("value") == before
            page.wait_for_function("() => [...document.images].every(im => im.complete && im.naturalWidth > 0)")
            sliders = page.locator(".slider")
            if sliders.count():
                saw_volume = True
                assert sliders.count() == 3
                src = page.locator("#view2").get_attribute("src")
                sliders.nth(2).focus()
                page.keyboard.press("ArrowRight")
                sync_api.expect(page.locator("#view2")).not_to_have_attribute("src", src)
                page.wait_for_function("() => document.getElementById('view2').naturalWidth > 0")
            pid = page.locator('input[name="item"]').get_attribute("value")
            says, label, quality = ("synthetic" if i % 3 else "real"), CLASSES[i % 2], 1 + i % 5
            comment = "edge looks smeared" if i == 2 else ""
            if i % 2 == 0:  # keyboard only
                if comment:
                    page.keyboard.press("/")
                    page.keyboard.type(comment)  # letters typed in the comment are not shortcuts
                    page.keyboard.press("Escape")
                page.keyboard.press("s" if says == "synthetic" else "r")
                page.keyboard.press("ab"[CLASSES.index(label)])
                page.keyboard.press(str(quality))
                assert page.locator(f'input[name="says"][value="{says}"]').is_checked()
                page.keyboard.press("Enter")
            else:  # mouse
                page.locator(f'input[name="says"][value="{says}"]').check()
                page.locator(f'input[name="label"][value="{label}"]').check()
                page.locator(f'input[name="quality"][value="{quality}"]').check()
                page.locator("#next").click()
            given[pid] = (says, label, quality, comment)
        sync_api.expect(page.locator("h1")).to_have_text("Thank you")
        sync_api.expect(page.locator("#progress")).to_have_text("10 / 10")
        browser.close()
    assert saw_volume
    return given
