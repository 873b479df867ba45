"""3D evaluation of brain volumes: reading NIfTI image + segmentation pairs, the volume metrics, their figures.

The family that runs them and its typed result live in :mod:`medfab.evaluation.families.volumes`.
"""
