"""Feature extractors: radiomics vs pyradiomics itself, the feature network, user files, degradations."""

import json
import logging

import numpy as np
import pytest
import torch
from _fidelity_images import blur, noise, phantoms

from medfab.data.tensors import TensorSet
from medfab.errors import MedfabError
from medfab.evaluation.classifier import SmallCNN
from medfab.evaluation.distances import frechet_distance
from medfab.evaluation.features import extract, extract_pair
from medfab.evaluation.features.feature_net import FeatureNet
from medfab.evaluation.features.radiomic import RadiomicFeatures, settings
from medfab.evaluation.features.user_extractor import load_extractor

FEW = {"firstorder": ["Mean", "Entropy", "Variance"], "glcm": ["Contrast", "Idm"], "glszm": ["ZoneEntropy"]}


def test_radiomic_features_match_pyradiomics_extractor():
    radiomics = pytest.importorskip("radiomics")
    import SimpleITK as sitk
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    from medfab.evaluation.brain_mass import binarise

    radiomics.setVerbosity(logging.ERROR)
    x = phantoms(1, seed=3)
    ex = RadiomicFeatures(mask="brain", n_jobs=1)
    ours = ex.raw(x)[0]
    mask = binarise(x)[0]                                         # (1, H, W)
    ref = RadiomicsFeatureExtractor(**settings())
    ref.disableAllFeatures()
    ref.enableFeatureClassByName("firstorder")
    for c in ("glcm", "glrlm", "glszm"):
        ref.enableFeatureClassByName(c)
    out = ref.execute(sitk.GetImageFromArray(x[0].astype(np.float64)),
                      sitk.GetImageFromArray(mask.astype(np.uint8)))
    names = ex.feature_names()
    assert len(names) == len(ours) >= 70
    want = np.array([float(out[f"original_{n}"]) for n in names])
    np.testing.assert_allclose(ours, want, rtol=1e-6, atol=1e-9)


def test_radiomic_standardised_on_real_and_subset():
    pytest.importorskip("radiomics")
    real = phantoms(12, seed=1)
    ex = RadiomicFeatures(FEW, mask="whole", n_jobs=1)
    f = ex.fit_transform(real)
    assert f.shape == (12, 6) and ex.names_[0] == "firstorder_Mean"
    np.testing.assert_allclose(f.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(f.std(0), 1, rtol=1e-9)
    assert ex.raw(real)[:, 0] == pytest.approx(real.reshape(12, -1).mean(1), rel=1e-6)
    with pytest.raises(MedfabError):
        RadiomicFeatures({"glcm": ["NotAFeature"]}).raw(real)


def test_radiomic_parallel_and_degenerate_images():
    pytest.importorskip("radiomics")
    x = phantoms(64, size=16, seed=4)
    x[0] = -1.0                                      # blank image: brain mask falls back to the whole image
    x[1] = 0.3
    one = RadiomicFeatures(FEW, n_jobs=1).raw(x)
    two = RadiomicFeatures(FEW, n_jobs=2).raw(x)    # 2 spawned worker processes
    np.testing.assert_array_equal(one, two)
    assert np.isfinite(one).all()


def test_skimage_fallback():
    x = phantoms(6, seed=1)
    ex = RadiomicFeatures(mask="whole", backend="skimage")
    f = ex.fit_transform(x)
    assert f.shape == (6, 16) and np.isfinite(f).all() and ex.backend_ == "skimage"
    raw = ex.raw(x)
    assert raw[:, 0] == pytest.approx(x.reshape(6, -1).mean(1), rel=1e-6)   # first-order mean


def _labelled(n, seed):
    x = np.concatenate([phantoms(n // 2, seed=seed, big=False), phantoms(n // 2, seed=seed + 100, big=True)])
    y = np.repeat([0, 1], n // 2)
    return TensorSet(x, y, ["small", "large"], [f"k{i}" for i in range(n)])


def test_featurenet_fit_save_load(tmp_path):
    real = _labelled(32, seed=0)
    net = FeatureNet.fit(real, seed=0, epochs=1)
    f = net.transform(real.x)
    assert f.shape == (32, net.feature_dim) and f.dtype == np.float64
    np.testing.assert_allclose(f.mean(0), 0, atol=1e-6)            # standardised on the real training set
    sd = f.std(0)
    assert np.all(np.isclose(sd, 1, rtol=1e-4) | (sd < 1e-9)) and (sd > 0.5).sum() > 10   # dead units stay 0
    loaded = FeatureNet.load(net.save(tmp_path / "fn"))
    np.testing.assert_array_equal(loaded.transform(real.x), f)
    assert loaded.config == net.config
    with pytest.raises(MedfabError):
        net.transform(phantoms(2, size=16))                   # a different size from training
    with pytest.raises(MedfabError):
        FeatureNet.load(tmp_path / "missing")


def test_user_torchscript_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    x = phantoms(5, seed=1)
    torch.manual_seed(0)
    cnn = SmallCNN(3, width=4).eval()
    with torch.no_grad():
        want = cnn.features(torch.from_numpy(x)).double().numpy()
    save_file(cnn.state_dict(), str(tmp_path / "cnn.safetensors"))
    (tmp_path / "cnn.json").write_text(json.dumps({"network": "SmallCNN",
                                                   "kwargs": {"num_classes": 3, "width": 4}}))
    np.testing.assert_allclose(load_extractor(tmp_path / "cnn.safetensors").transform(x), want, rtol=1e-6)

    class Feat(torch.nn.Module):
        def forward(self, t):
            return torch.cat([t.mean((2, 3)), t.amax((2, 3))], 1)     # (B, 2)

    torch.jit.save(torch.jit.script(Feat()), str(tmp_path / "feat.pt"))
    f = load_extractor(tmp_path / "feat.pt").transform(x)
    np.testing.assert_allclose(f[:, 0], x.mean((1, 2, 3)), rtol=1e-6)
    assert f.shape == (5, 2)


def test_user_monai_network_with_feature_layer(tmp_path):
    from monai.networks.nets import DenseNet
    from safetensors.torch import save_file

    kwargs = {"spatial_dims": 2, "in_channels": 1, "out_channels": 2, "init_features": 4, "growth_rate": 4,
              "block_config": [1, 1], "bn_size": 2}
    torch.manual_seed(0)
    net = DenseNet(**kwargs).eval()
    save_file(net.state_dict(), str(tmp_path / "d.safetensors"))
    (tmp_path / "d.json").write_text(json.dumps({"network": "DenseNet", "kwargs": kwargs,
                                                 "feature_layer": "features"}))
    x = phantoms(3)
    with torch.no_grad():
        want = net.features(torch.from_numpy(x)).mean((2, 3)).double().numpy()   # (B, C) pooled
    np.testing.assert_allclose(load_extractor(tmp_path / "d.safetensors").transform(x), want, rtol=1e-5)
    (tmp_path / "d.json").write_text(json.dumps({"network": "os.system", "kwargs": {}}))
    with pytest.raises(MedfabError):
        load_extractor(tmp_path / "d.safetensors")
    (tmp_path / "e.safetensors").write_bytes(b"")
    with pytest.raises(MedfabError):                          # no sidecar
        load_extractor(tmp_path / "e.safetensors")


def test_dispatcher_errors():
    x = phantoms(4)
    with pytest.raises(MedfabError):
        extract("inception", x)
    with pytest.raises(MedfabError):
        extract("featurenet", x)                              # no network and no labels
    with pytest.raises(MedfabError):
        extract_pair("pixel", x, phantoms(4, size=16))


def test_fd_detects_blur_and_noise_in_every_feature_space():
    real = _labelled(48, seed=0)
    a, b, c = phantoms(48, seed=1), phantoms(48, seed=2), phantoms(48, seed=3)
    spaces = {"pixel": {"n_components": 8},
              "featurenet": {"net": FeatureNet.fit(real, seed=0, epochs=2)}}
    try:
        import radiomics  # noqa: F401

        spaces["radiomic"] = {"features": FEW, "n_jobs": 1}
    except ImportError:
        spaces["radiomic"] = {"backend": "skimage"}
    for name, kw in spaces.items():
        base_b = frechet_distance(*extract_pair(name, a, b, **kw))
        base_c = frechet_distance(*extract_pair(name, a, c, **kw))
        assert base_c < 2 * base_b and base_b < 2 * base_c, (name, base_b, base_c)   # real vs real: stable
        # Pixel PCA keeps the real set's top components (head shape), where white noise has little energy:
        # it needs 0.8 noise to move clearly; the learnt and radiomic features see 0.25 (as do histograms).
        for degraded in (blur(b), noise(b, 0.8 if name == "pixel" else 0.25)):
            d = frechet_distance(*extract_pair(name, a, degraded, **kw))
            assert d > 2 * max(base_b, base_c), (name, base_b, base_c, d)
