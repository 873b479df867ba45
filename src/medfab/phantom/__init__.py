"""The built-in phantom cohort: labelled synthetic brain MRI from real MNI152 anatomy, offline.

Random parameters are drawn first (:func:`sample_params`) and rendered by a deterministic function
(:func:`render_subject`), so the same seed always gives the same bytes.

    from medfab.phantom import make_cohort
    make_cohort("alzheimer", n=1000, size=128, dims=2, seed=0, out="phantom_ad")
"""

from medfab.phantom.cohort import COLUMNS, make_cohort
from medfab.phantom.config import CLASSES, PhantomConfig, class_counts
from medfab.phantom.params import SubjectParams, TumourParams, sample_params, subject_seed
from medfab.phantom.render import render_subject

__all__ = [
    "CLASSES", "COLUMNS", "PhantomConfig", "SubjectParams", "TumourParams", "class_counts", "make_cohort",
    "render_subject", "sample_params", "subject_seed",
]
