"""medfab: generative fabrication of labelled medical images for machine-learning training.

The package follows the pipeline: data -> models -> training -> sampling -> evaluation -> report,
with a thin command-line interface on top (``medfab --help``).
"""

__version__ = "0.1.0"
