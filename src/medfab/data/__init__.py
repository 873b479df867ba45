"""Data layer: readers -> labelled samples -> preprocessing -> cached tensors; splits; inspection."""

from medfab.data.preprocess import PreprocessConfig
from medfab.data.readers import load_array, read_dataset
from medfab.data.sample import Dataset, Sample
from medfab.data.tensors import TensorSet, load_tensors

__all__ = ["Dataset", "PreprocessConfig", "Sample", "TensorSet", "load_array", "load_tensors", "read_dataset"]
