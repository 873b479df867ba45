"""A corpus of hostile inputs, generated on the fly (no binary fixtures): data folders and run folders that
each hide one trap, with what medfab must make of it.

Every data case is a small two-class folder of good 16x16 PNGs (or 8x8x8 NIfTI volumes) plus one trap.
``expect`` says what a command must do with it:

* ``"ok"``     -- it runs (exit 0), and ``counts`` (when given) are exactly the images per class;
* ``"error"``  -- it stops with one message (exit 2) that names ``names`` (a file or folder).

``inspect`` is what ``medfab data inspect`` must do (it lists every problem and so exits 0 for most traps),
``train`` what ``medfab train`` must do; ``mention`` is text its output must contain (a warning, a listing).
Run cases (hostile checkpoints and configs) are applied to a copy of a trained run and used by
``medfab sample``.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

N_GOOD = 4  # good images per class


@dataclass
class Case:
    name: str
    build: Callable[[Path], None]  # adds the trap to a folder that already holds the good images
    inspect: str  # "ok" | "error"
    train: str  # "ok" | "error"
    names: list[str] = field(default_factory=list)  # what an error (or the inspect listing) must name
    counts: dict[str, int] | None = None  # images per class that train must report ("A 4, B 4")
    layout: str = "png"  # the good images: "png" (16x16), "nifti" (8x8x8 volumes) or "dicom" (one series)
    mention: str | None = None  # text the inspect output must contain


def good_images(root: Path, *, layout: str = "png", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for c in ("A", "B"):
        (root / c).mkdir(parents=True, exist_ok=True)
        if layout == "dicom":
            _series(root / c / "series")
            continue
        for i in range(N_GOOD):
            if layout == "nifti":
                nifti(root / c / f"{c}{i}.nii.gz", rng.uniform(0, 100, (8, 8, 8)).astype(np.float32))
            else:
                a = rng.integers(0, 255, (16, 16)).astype(np.uint8)
                Image.fromarray(a).save(root / c / f"{c}{i}.png")
    return root


def nifti(path: Path, data: np.ndarray) -> Path:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def png_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header declaring width x height grey pixels, with a few bytes of data (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def write_dicom(path: Path, pixels: np.ndarray, *, series: str = "1.2.3.4", instance: int = 1) -> Path:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = f"{series}.{instance}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.InstanceNumber = "CT", series, instance
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, float(instance)], [1.0, 0, 0, 0, 1.0, 0]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def _series(folder: Path, n: int = 3, series: str = "1.2.3.4", first: int = 1) -> None:
    rng = np.random.default_rng(first)
    for i in range(n):
        write_dicom(folder / f"s{first + i}.dcm", rng.integers(0, 4000, (16, 16)), series=series,
                    instance=first + i)


def _cut(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _jpeg(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG")
    return buf.getvalue()


_noise = np.random.default_rng(1).integers(0, 255, (32, 32)).astype(np.uint8)


def _link_loop(root: Path) -> None:
    (root / "B" / "loop").symlink_to("..", target_is_directory=True)


def _link_class(root: Path) -> None:
    (root / "B" / "more").symlink_to(root / "A", target_is_directory=True)


def _link_file_across(root: Path) -> None:
    (root / "A" / "b0.png").symlink_to(root / "B" / "B0.png")


def _link_outside(root: Path) -> None:
    outside = root.parent / f"{root.name}_outside"
    good_images(outside / "tree", seed=5)  # a folder with sub-folders: never walked from inside the data
    (root / "B" / "elsewhere").symlink_to(outside, target_is_directory=True)


def _dicom_with_text(root: Path) -> None:
    (root / "B" / "series" / "notes.dcm").write_text("this is a radiology note, not a DICOM file\n" * 4)


def _dicom_mixed(root: Path) -> None:
    _series(root / "B" / "series", n=2, series="9.9.9.9", first=10)


CASES: list[Case] = [
    Case("link loop", _link_loop, "ok", "ok", ["loop"], {"A": 4, "B": 4}),
    Case("link to another class", _link_class, "ok", "ok", ["more"], {"A": 4, "B": 4}),
    Case("file link across classes", _link_file_across, "ok", "ok", ["b0.png"], {"A": 4, "B": 4}),
    Case("link out of the data folder", _link_outside, "ok", "ok", ["elsewhere"], {"A": 4, "B": 4}),
    Case("decompression bomb", lambda r: (r / "A" / "bomb.png").write_bytes(bomb_png()), "ok", "error",
         ["bomb.png"], mention="decompression bomb"),
    Case("zero-byte file", lambda r: (r / "A" / "empty.png").write_bytes(b""), "ok", "error", ["empty.png"]),
    Case("text named .png", lambda r: (r / "B" / "notes.png").write_text("not an image\n"), "ok", "error",
         ["notes.png"]),
    Case("truncated PNG", lambda r: (r / "A" / "cut.png").write_bytes(_cut(png_bytes(_noise))), "ok", "error",
         ["cut.png"]),
    Case("truncated JPEG", lambda r: (r / "B" / "cut.jpg").write_bytes(_cut(_jpeg(_noise))), "ok", "error",
         ["cut.jpg"]),
    Case("blank images", lambda r: (Image.fromarray(np.zeros((16, 16), np.uint8)).save(r / "A" / "black.png"),
                                    Image.fromarray(np.zeros((1, 1), np.uint8)).save(r / "B" / "dot.png")),
         "ok", "ok", ["black.png"], {"A": 5, "B": 5}, mention="blank"),
    Case("empty class folder", lambda r: (r / "C").mkdir(), "ok", "error", ["C"]),
    Case("NaN NIfTI", lambda r: nifti(r / "A" / "nan.nii.gz", np.full((8, 8, 8), np.nan, np.float32)), "ok",
         "error", ["nan.nii.gz"], layout="nifti"),
    Case("Inf NIfTI", lambda r: nifti(r / "B" / "inf.nii.gz", np.full((8, 8, 8), np.inf, np.float32)), "ok",
         "error", ["inf.nii.gz"], layout="nifti"),
    Case("4D NIfTI", lambda r: nifti(r / "A" / "fmri.nii.gz", np.ones((8, 8, 8, 3), np.float32)), "ok", "error",
         ["fmri.nii.gz"], layout="nifti"),
    Case("broken NIfTI", lambda r: (r / "B" / "broken.nii.gz").write_bytes(b"\x1f\x8b" + b"\0" * 40), "ok",
         "error", ["broken.nii.gz"], layout="nifti"),
    Case("2D NIfTI among volumes", lambda r: nifti(r / "A" / "flat.nii.gz", np.ones((8, 8), np.float32)), "ok",
         "error", ["flat.nii.gz"], layout="nifti", mention="2D"),
    Case("non-DICOM .dcm in a series", _dicom_with_text, "ok", "error", ["notes.dcm"], layout="dicom"),
    Case("mixed DICOM series", _dicom_mixed, "ok", "error", ["s10.dcm"], layout="dicom", mention="mixes"),
]


# --- run folders -----------------------------------------------------------------------------------------
def make_run(run: Path) -> Path:
    """A run folder as `medfab train` writes it (config.json + one checkpoint of a tiny VAE), made without the
    training loop, so that sampling tests do not depend on training."""
    import torch

    from medfab.models.registry import build_model
    from medfab.training import checkpoint as ckpt

    torch.manual_seed(0)
    model, cfg = build_model("vae", image_size=16, channels=1, spatial_dims=2, num_classes=2, width=8,
                             latent_dim=8)
    config = {"command": "train", "model": cfg.model_dump(),
              "data": {"classes": ["A", "B"], "counts": {"A": N_GOOD, "B": N_GOOD}}}
    run.mkdir(parents=True)
    ckpt.atomic_write_json(run / "config.json", config)
    ckpt.save_checkpoint(run, model, {}, step=1, nimg=4, train_seconds=1.0, config=config)
    return run


class _Exploit:
    """Unpickling this runs code: it creates the file ``path``. A safe loader never unpickles."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _checkpoint(run: Path) -> Path:
    return max((run / "checkpoints").glob("ckpt-*.safetensors"))


def _pickle_checkpoint(run: Path) -> None:
    import pickle

    _checkpoint(run).write_bytes(pickle.dumps({"model/w": _Exploit(str(run / "PWNED"))}))


def _wrong_tensors(run: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"model/not_a_layer": torch.zeros(3)}, str(_checkpoint(run)))


def _config(run: Path, edit) -> None:
    cfg = json.loads((run / "config.json").read_text())
    edit(cfg)
    (run / "config.json").write_text(json.dumps(cfg))


RUN_CASES: dict[str, Callable[[Path], None]] = {
    "pickle checkpoint": _pickle_checkpoint,
    "truncated checkpoint": lambda r: _checkpoint(r).write_bytes(_cut(_checkpoint(r).read_bytes())),
    "empty checkpoint": lambda r: _checkpoint(r).write_bytes(b""),
    "checkpoint of other tensors": _wrong_tensors,
    "sidecar not JSON": lambda r: _checkpoint(r).with_suffix(".json").write_text("{ not json"),
    "config not JSON": lambda r: (r / "config.json").write_text("model: vae\n"),
    "config is a list": lambda r: (r / "config.json").write_text("[1, 2]"),
    "config without model": lambda r: _config(r, lambda c: c.pop("model")),
    "config without classes": lambda r: _config(r, lambda c: c["data"].pop("classes")),
    "absurd width": lambda r: _config(r, lambda c: c["model"].update(latent_dim=10**9)),
    "absurd image size": lambda r: _config(r, lambda c: c["model"].update(image_size=10**6)),
}
