"""Fabrication: labelled synthetic images from a trained run, each reproducible from its recorded seed."""

from medfab.sampling.fabricate import fabricate, generate_batch, generate_one, plan_counts

__all__ = ["fabricate", "generate_batch", "generate_one", "plan_counts"]
