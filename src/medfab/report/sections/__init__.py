"""One report section per metric family, each reading that family's typed result.

A section module defines ``RESULT`` (the result class it reads), ``TITLE``, ``INTRO``, and
``tables(r, res) -> list[Table]``, ``verdicts(r, res) -> list[Verdict]``, ``cards(r, res)`` (headline cards),
where ``r`` is the family's result and ``res`` the whole :class:`~medfab.evaluation.results.Results`.
"""

from __future__ import annotations

from medfab.report.sections import class_fidelity, diversity, fidelity, privacy, utility, volumes

SECTIONS = {
    "fidelity": fidelity,
    "diversity": diversity,
    "class": class_fidelity,
    "utility": utility,
    "privacy": privacy,
    "volumes": volumes,
}
