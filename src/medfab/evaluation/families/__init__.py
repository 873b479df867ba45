"""The metric families of ``medfab evaluate``: one module per family, each next to its real-vs-real baseline.

Each module defines ``class <Family>Result(BaseModel)`` (with a ``family`` tag, so results.json reads back
into the right type) and ``compute(ctx) -> (result, figures)``, figures being ``(png_path, caption)`` pairs.
The report's sections (:mod:`medfab.report.sections`) read these typed results; nothing is passed around as
an untyped dict. Comparisons use equal sample sizes: real half A is the reference, real half B the
baseline, and a synthetic subset with half B's class counts the figure under test.

``volumes`` is the 3D family (brain and tissue volumes, voxel variance, 3D MS-SSIM, nearest training
volume); it reads NIfTI folders itself instead of the 2D context.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from medfab.evaluation.families import class_fidelity, diversity, fidelity, privacy, utility, volumes
from medfab.evaluation.families.base import Skipped, clean
from medfab.evaluation.families.class_fidelity import ClassFidelityResult
from medfab.evaluation.families.diversity import DiversityResult
from medfab.evaluation.families.extractors import make_extractor
from medfab.evaluation.families.fidelity import FidelityResult
from medfab.evaluation.families.privacy import PrivacyResult
from medfab.evaluation.families.samples import sample_grids
from medfab.evaluation.families.utility import UtilityResult
from medfab.evaluation.families.volumes import VolumesResult

#: family name (``--families``) -> module with ``compute(ctx)``
MODULES = {
    "fidelity": fidelity,
    "diversity": diversity,
    "class": class_fidelity,
    "utility": utility,
    "privacy": privacy,
    "volumes": volumes,
}

#: the typed result of any family, chosen by its ``family`` tag
FamilyData = Annotated[
    FidelityResult | DiversityResult | ClassFidelityResult | UtilityResult | PrivacyResult | VolumesResult,
    Field(discriminator="family"),
]

__all__ = [
    "MODULES",
    "ClassFidelityResult",
    "DiversityResult",
    "FamilyData",
    "FidelityResult",
    "PrivacyResult",
    "Skipped",
    "UtilityResult",
    "VolumesResult",
    "clean",
    "make_extractor",
    "sample_grids",
]
