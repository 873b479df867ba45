"""Shared test set-up: tests never touch the user's cache and never need real data or a GPU."""

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Preprocessed-tensor cache in a per-session temp folder, not ~/.cache/medfab.
    monkeypatch.setenv("MEDFAB_CACHE", str(tmp_path_factory.getbasetemp() / "medfab_cache"))


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test (restored after): on a shared 2-core machine more threads only wait
    for each other. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_registered(monkeypatch):
    """The tiny test GAN of ``tests/tiny_model.py`` in the model registry for the test. Use with
    ``pytestmark = pytest.mark.usefixtures("tiny_registered")``."""
    from tiny_model import register_tiny

    register_tiny(monkeypatch)


# Small matrix products on a 2-core machine run far faster with one BLAS thread.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")
