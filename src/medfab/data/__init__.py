"""Data layer: readers -> labelled samples -> preprocessing -> cached tensors; splits; inspection."""

from medfab.data.sample import Dataset, Sample
from medfab.data.tensors import TensorSet, load_tensors

__all__ = ["Dataset", "Sample", "TensorSet", "load_tensors"]
