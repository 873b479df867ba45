"""Checkpoints: every model and optimiser tensor in one safetensors file, the rest in a JSON sidecar.

``checkpoints/ckpt-<kimg>.safetensors`` holds ``model/<state_dict key>``, ``optim/<name>/<param>/<key>``
and ``rng/<device>`` tensors; ``ckpt-<kimg>.json`` holds the step, images seen, training time, optimiser
hyper-parameters and the run config. Both are written to a temporary name and moved into place with
``os.replace``; the sidecar is moved last, so a checkpoint without its sidecar is an unfinished one and
is ignored. A run folder's ``config.json`` rebuilds the model (the nanoGPT habit), so :func:`load_run`
needs nothing but the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from medfab.errors import MedfabError

CKPT_DIR = "checkpoints"


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    _atomic_write_bytes(Path(path), json.dumps(obj, indent=2, default=str).encode())


def _flatten_optimizers(optimizers: dict[str, torch.optim.Optimizer]
                        ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        extra: dict[str, dict[str, Any]] = {}
        for pid, state in sd["state"].items():
            for k, v in state.items():
                if torch.is_tensor(v):
                    tensors[f"optim/{name}/{pid}/{k}"] = v
                else:                                   # e.g. an int step in some optimisers
                    extra.setdefault(str(pid), {})[k] = v
        meta[name] = {"param_groups": sd["param_groups"], "extra": extra}
    return tensors, meta


def _unflatten_optimizer(name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict:
    state: dict[int, dict[str, Any]] = {}
    prefix = f"optim/{name}/"
    for key, v in tensors.items():
        if key.startswith(prefix):
            pid, k = key[len(prefix):].split("/", 1)
            state.setdefault(int(pid), {})[k] = v
    for pid, kv in meta.get("extra", {}).items():
        state.setdefault(int(pid), {}).update(kv)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(run_dir: Path, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer],
                    *, step: int, nimg: int, train_seconds: float, config: dict, keep: int = 2,
                    loop_state: dict | None = None) -> Path:
    """Write ``checkpoints/ckpt-<kimg>.safetensors`` + sidecar atomically, keep the newest ``keep``."""
    from safetensors.torch import save

    ckdir = Path(run_dir) / CKPT_DIR
    ckdir.mkdir(parents=True, exist_ok=True)
    # clone(): safetensors refuses tensors that share storage (tied weights, views).
    tensors = {f"model/{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = _flatten_optimizers(optimizers)
    tensors.update({k: v.detach().cpu().contiguous().clone() for k, v in opt_tensors.items()})
    tensors["rng/cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng/cuda"] = torch.cuda.get_rng_state()
    stem = f"ckpt-{nimg / 1000:010.3f}"
    path = ckdir / f"{stem}.safetensors"
    _atomic_write_bytes(path, save(tensors))
    sidecar = {"step": step, "nimg": nimg, "kimg": nimg / 1000, "train_seconds": train_seconds,
               "checkpoint": path.name, "optimizers": opt_meta, "config": config}
    if loop_state is not None:                          # the loop's own state, e.g. an unfinished log window
        sidecar["loop"] = loop_state
    atomic_write_json(ckdir / f"{stem}.json", sidecar)
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints (tensors + sidecar) of a run, oldest first."""
    ckdir = Path(run_dir) / CKPT_DIR
    found = []
    for side in ckdir.glob("ckpt-*.json"):
        tensors = side.with_suffix(".safetensors")
        if not tensors.is_file():
            continue
        try:
            nimg = json.loads(side.read_text())["nimg"]
        except (OSError, ValueError, KeyError):
            continue                                    # a damaged sidecar is an unusable checkpoint
        found.append((nimg, tensors))
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def _read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; any failure is one MedfabError naming the file (JSON only: no code runs)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise MedfabError(f"{what} {path} is missing", "the run was not finished or was damaged: "
                          "resume it, or train into a new --out folder") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise MedfabError(f"{what} {path} is not valid JSON ({e})",
                          "the file is damaged (a crash while writing?) or not medfab's: restore it, or "
                          "train into a new --out folder") from None
    if not isinstance(data, dict):
        raise MedfabError(f"{what} {path} does not hold a JSON object", "restore the file, or train again")
    return data


def read_sidecar(path: str | Path) -> dict[str, Any]:
    return _read_json(Path(path).with_suffix(".json"), "checkpoint sidecar")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_checkpoint(path: str | Path, model: torch.nn.Module,
                    optimizers: dict[str, torch.optim.Optimizer] | None = None,
                    *, restore_rng: bool = False) -> dict[str, Any]:
    """Load weights (and optimiser states, RNG) from ``path`` into ``model``; return the sidecar."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise MedfabError(f"checkpoint {path} does not exist", "list the run's checkpoints/ folder")
    damaged = "delete it (the run resumes from the previous checkpoint) or train into a new --out folder"
    try:  # safetensors only: a JSON header and raw tensor bytes, so loading never executes code
        tensors = load_file(str(path))
    except Exception as e:  # noqa: BLE001 -- SafetensorError, OSError, ...: all mean "not a usable file"
        raise MedfabError(f"checkpoint {path} is not a complete safetensors file ({e})", damaged) from None
    meta = read_sidecar(path)
    weights = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise MedfabError(f"checkpoint {path} does not fit this model: {str(e).splitlines()[0]}",
                          "use the same model settings as the run that wrote it, or a new --out folder") from None
    try:
        for name, opt in (optimizers or {}).items():
            if name not in meta["optimizers"]:
                raise MedfabError(f"checkpoint {path} has no state for optimiser '{name}'",
                                  "resume with the same model, or train into a new --out folder")
            opt.load_state_dict(_unflatten_optimizer(name, tensors, meta["optimizers"][name]))
        if restore_rng:
            torch.set_rng_state(tensors["rng/cpu"])
            if torch.cuda.is_available() and "rng/cuda" in tensors:
                torch.cuda.set_rng_state(tensors["rng/cuda"])
        for k in ("step", "nimg", "kimg", "train_seconds"):
            float(meta[k])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        raise MedfabError(f"checkpoint {path} or its sidecar is inconsistent ({type(e).__name__}: {e})",
                          damaged) from None
    return meta


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    cfg_path = Path(run_dir) / "config.json"
    if not cfg_path.is_file():
        raise MedfabError(f"{run_dir} is not a medfab run (no config.json)",
                          "give the --out folder of a 'medfab train' run")
    return _read_json(cfg_path, "run config")


def build_from_config(config: dict[str, Any]) -> torch.nn.Module:
    """The model described by a run's ``config["model"]`` (registry name + fields)."""
    from medfab.models.registry import build_model

    fields = config.get("model")
    if not isinstance(fields, dict) or not isinstance(fields.get("name"), str):
        raise MedfabError("the run config has no usable 'model' entry (a mapping with a 'name')",
                          "restore the run's config.json, or train again")
    fields = dict(fields)
    name = fields.pop("name")
    model, _ = build_model(name, **fields)
    return model


def load_run(run_dir: str | Path, which: str | Path = "latest") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a trained model from a run folder, in eval mode on the CPU.

    ``which``: "latest" or a checkpoint path (or file name inside ``checkpoints/``). The returned config is
    the run's ``config.json`` plus ``checkpoint`` (path), ``checkpoint_sha256``, ``kimg`` and
    ``train_seconds`` of the checkpoint that was loaded.
    """
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    data = config.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list) \
            or not isinstance(data.get("counts", {}), dict):
        raise MedfabError(f"{run_dir / 'config.json'} has no usable data.classes / data.counts",
                          "restore the run's config.json, or train again")
    if config.get("per_class"):
        raise MedfabError(f"{run_dir} holds one model per class", f"load {run_dir}/<class> instead")
    if str(which) == "latest":
        path = latest_checkpoint(run_dir)
        if path is None:
            damaged = [s.name for s in sorted((run_dir / CKPT_DIR).glob("ckpt-*.json"))
                       if s.with_suffix(".safetensors").is_file()]
            raise MedfabError(f"{run_dir} has no complete checkpoint"
                              + (f" (damaged sidecar: {', '.join(damaged)})" if damaged else ""),
                              "train longer or resume the run first" if not damaged else
                              "resume the run (the damaged checkpoint is ignored), or restore the sidecar JSON")
    else:
        path = Path(which)
        if not path.is_file() and (run_dir / CKPT_DIR / path).is_file():
            path = run_dir / CKPT_DIR / path
    try:
        model = build_from_config(config)
    except MedfabError as e:  # a damaged or edited config.json: say which file
        raise MedfabError(f"{run_dir / 'config.json'}: {e.message}", e.hint) from None
    meta = load_checkpoint(path, model)
    model.eval()
    return model, {**config, "checkpoint": str(path), "checkpoint_sha256": file_sha256(path),
                   "kimg": meta["kimg"], "train_seconds": meta["train_seconds"]}
