"""A feature extractor the user supplies as a local file (nothing is downloaded).

Two formats:
- TorchScript (``.pt``, ``.pth``, ``.ts``, ``.jit``): ``torch.jit.load`` **runs code from the file: load only
  files you trust**. Called on (B, 1, H, W) float32 in [-1, 1]; its output is the feature vector.
- safetensors state dict (``.safetensors``) plus a JSON sidecar with the same stem (``net.json``)::

      {"network": "SmallCNN" | "<a class in monai.networks.nets, e.g. DenseNet121>",
       "kwargs": {...constructor arguments...},
       "feature_layer": null | "name.of.submodule"}

  Loading a safetensors file never executes code; the network class is looked up by name in medfab's
  SmallCNN or ``monai.networks.nets`` only. Features: SmallCNN's penultimate layer; for MONAI networks the
  output of ``feature_layer`` (a forward hook) or of the whole network. Spatial outputs are
  global-average-pooled to (B, C).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medfab.errors import MedfabError
from medfab.evaluation.checks import check_images

TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".jit", ".torchscript")


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def _pool(out):
    """(B, C, *spatial) -> (B, C); (B, F) unchanged."""
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.flatten(2).mean(-1) if out.ndim > 2 else out.reshape(len(out), -1)


class ModuleExtractor:
    """Runs ``module`` in eval mode; features come from ``feature_fn(module, x)``."""

    def __init__(self, module, feature_fn=None, name: str = "user"):
        self.module = module.eval()
        self.feature_fn = feature_fn or (lambda m, x: m(x))
        self.name = name

    def transform(self, x: np.ndarray, *, batch_size: int = 128) -> np.ndarray:
        import torch

        x = check_images(x)
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                out.append(_pool(self.feature_fn(self.module, torch.as_tensor(x[i:i + batch_size]))).double())
        f = torch.cat(out).numpy()
        if not np.isfinite(f).all():
            raise MedfabError(f"the feature extractor {self.name} returned NaN or infinite features",
                              "check that it accepts (B, 1, H, W) inputs in [-1, 1]")
        return f


def _hooked(layer_name: str):
    """feature_fn that returns the output of the submodule ``layer_name``."""
    def fn(module, x):
        grabbed = {}
        layer = dict(module.named_modules())[layer_name]
        def hook(module, inputs, output) -> None:     # must return None: a returned value replaces the output
            # clone: a later in-place op (ReLU(inplace=True)) would otherwise overwrite the grabbed tensor
            grabbed["out"] = _first(output).clone()

        handle = layer.register_forward_hook(hook)
        try:
            module(x)
        finally:
            handle.remove()
        return grabbed["out"]
    return fn


def _build_network(spec: dict):
    from torch import nn

    name, kwargs = spec.get("network"), spec.get("kwargs", {})
    if name == "SmallCNN":
        from medfab.evaluation.classifier import SmallCNN

        return SmallCNN(**kwargs), (lambda m, x: m.features(x))
    from monai.networks import nets

    cls = getattr(nets, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise MedfabError(f"unknown network {name!r} in the JSON sidecar",
                          "use 'SmallCNN' or a class name from monai.networks.nets, e.g. 'DenseNet121'")
    try:
        net = cls(**kwargs)
    except TypeError as e:
        raise MedfabError(f"cannot build {name} from kwargs {kwargs}: {e}",
                          "fix 'kwargs' in the JSON sidecar to match the network's constructor") from e
    return net, None


def load_extractor(path: str | Path, *, feature_layer: str | None = None) -> ModuleExtractor:
    """Load a user feature extractor (see the module docstring); returns an object with ``.transform(x)``."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise MedfabError(f"feature extractor file {p} not found", "pass the path to a local file")
    if p.suffix.lower() in TORCHSCRIPT_SUFFIXES:
        try:
            module = torch.jit.load(str(p), map_location="cpu")   # runs code from the file: trusted files only
        except RuntimeError as e:
            raise MedfabError(f"{p} is not a TorchScript file: {e}",
                              "save it with torch.jit.save(torch.jit.script(model), path)") from e
        fn = _hooked(feature_layer) if feature_layer else None
        return ModuleExtractor(module, fn, name=p.name)
    if p.suffix.lower() != ".safetensors":
        raise MedfabError(f"unsupported feature extractor format {p.suffix!r}",
                          f"use TorchScript ({', '.join(TORCHSCRIPT_SUFFIXES)}) or .safetensors + .json")
    sidecar = p.with_suffix(".json")
    if not sidecar.is_file():
        raise MedfabError(f"{p.name} needs a JSON sidecar {sidecar.name} naming its network",
                          '{"network": "SmallCNN", "kwargs": {"num_classes": 4, "width": 16}}')
    spec = json.loads(sidecar.read_text())
    net, fn = _build_network(spec)
    from safetensors.torch import load_file

    try:
        net.load_state_dict(load_file(str(p)))
    except RuntimeError as e:
        raise MedfabError(f"the weights in {p.name} do not fit {spec.get('network')}: {e}",
                          "check 'kwargs' in the JSON sidecar (sizes must match the saved network)") from e
    layer = feature_layer or spec.get("feature_layer")
    if layer:
        if layer not in dict(net.named_modules()):
            raise MedfabError(f"{spec.get('network')} has no submodule {layer!r}",
                              "name one of [n for n, _ in net.named_modules()]")
        fn = _hooked(layer)
    return ModuleExtractor(net, fn, name=p.name)
