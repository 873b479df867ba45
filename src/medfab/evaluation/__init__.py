"""Evaluation of synthetic data sets: fidelity, diversity, class fidelity, utility, privacy."""
