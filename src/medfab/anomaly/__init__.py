"""VAE reconstruction-error anomaly detection (the Br35H study's unsupervised detector).

    from medfab.anomaly import AnomalyConfig, fit_anomaly, evaluate_anomaly
    fit_anomaly(AnomalyConfig(normal_class="no", size=64), "data/", "runs/ad", minutes=10)
    evaluate_anomaly("runs/ad", "data_test/", "EVAL/anomaly")

See docs/anomaly.md for the exact definitions of the four detectors.
"""

from medfab.anomaly.evaluate import detect, evaluate_anomaly, read_anomaly_run
from medfab.anomaly.fit import AnomalyConfig, fit_anomaly, fit_detectors, prepare_data
from medfab.anomaly.methods import (
                                    GIAEM,
                                    DBSCANDetector,
                                    ErrorSet,
                                    GlobalKMeans,
                                    SingleKMeans,
                                    choose_threshold,
                                    k_distance_elbow,
                                    two_means_1d,
)
from medfab.anomaly.metrics import binary_metrics

__all__ = [
                                    "GIAEM",
                                    "AnomalyConfig",
                                    "DBSCANDetector",
                                    "ErrorSet",
                                    "GlobalKMeans",
                                    "SingleKMeans",
                                    "binary_metrics",
                                    "choose_threshold",
                                    "detect",
                                    "evaluate_anomaly",
                                    "fit_anomaly",
                                    "fit_detectors",
                                    "k_distance_elbow",
                                    "prepare_data",
                                    "read_anomaly_run",
                                    "two_means_1d",
]
