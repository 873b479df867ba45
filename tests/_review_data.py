"""Tiny real/synthetic folders for the review tests (written into tmp_path; no binary fixtures), and
helpers to start the review server as a real process and to answer through HTTP."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

CLASSES = ("no", "yes")
SECRET_NAME = "PATIENT_DOE_JOHN"  # put in file names and PNG text chunks: must never reach the browser


def write_png(path: Path, seed: int, size: int = 16, tag: str = "") -> None:
    rng = np.random.default_rng(seed)
    a = (rng.random((size, size)) * 255).astype(np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_text("PatientName", SECRET_NAME)
    if tag:
        info.add_text("medfab", tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, pnginfo=info)


def write_nifti(path: Path, seed: int, shape=(8, 10, 12)) -> None:
    import nibabel as nib

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(rng.random(shape).astype(np.float32), np.eye(4)), str(path))


def make_folders(root: Path, per_class: int = 30, nifti_real: int = 0) -> tuple[Path, Path]:
    """root/real/<class>/*.png (+ NIfTI volumes) and root/synth/<class>/*.png + manifest.csv like `medfab sample`."""
    real, synth = root / "real", root / "synth"
    rows = ["file,class,model,checkpoint_sha256,seed"]
    for ci, c in enumerate(CLASSES):
        for i in range(per_class):
            write_png(real / c / f"{SECRET_NAME}_{i:03d}.png", 1000 * ci + i)
            write_png(synth / c / f"{c}_{i:05d}.png", 5000 + 1000 * ci + i, tag="synthetic")
            rows.append(f"{c}/{c}_{i:05d}.png,{c},dcgan,abc,{i}")
        for i in range(nifti_real):
            write_nifti(real / c / f"{SECRET_NAME}_vol{i}.nii.gz", 7000 + 10 * ci + i)
    (synth / "manifest.csv").write_text("\n".join(rows) + "\n")
    return real, synth


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def medfab_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "medfab.cli.main", *args]


def start_server(real: Path, synth: Path, out: Path, port: int, n: int = 10, threads: int = 8) -> subprocess.Popen:
    """`medfab review serve` as a child process; returns once it answers on ``port``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(out.parent / f"serve_{port}.log", "ab") as log:  # the child keeps its own copy of the handle
        p = subprocess.Popen(
            medfab_cmd("review", "serve", "--real", str(real), "--synthetic", str(synth), "--out", str(out),
                       "--n", str(n), "--port", str(port), "--threads", str(threads)),
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"serve exited with {p.returncode}: {(out.parent / f'serve_{port}.log').read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError("serve did not start within 20 s")


def add_reviewer(out: Path, name: str) -> str:
    """The reviewer's token, from the link that `medfab review add-reviewer` prints."""
    r = subprocess.run(medfab_cmd("review", "add-reviewer", str(out), name), capture_output=True, text=True, check=True)
    return re.search(r"/r/([A-Za-z0-9_-]+)", r.stdout).group(1)


def form_fields(html: str) -> dict[str, str]:
    """csrf and item of a review page."""
    out = {}
    for name in ("csrf", "item"):
        m = re.search(rf'name="{name}" value="([^"]*)"', html)
        if m:
            out[name] = m.group(1)
    return out
