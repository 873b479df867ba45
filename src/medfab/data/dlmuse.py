"""DLMUSE / MUSE label ids -> a few tissue classes, as a table (the segmentation channels progan3d generates).

DLMUSE (NiChart) writes the MUSE atlas labels, whose single-ROI ids follow the Neuromorphometrics / MICCAI 2012
grand-challenge numbering (Landman & Warfield 2012): 4-76 subcortical structures and ventricles, 81-95 white
matter ROIs, 100-207 cortical grey-matter parcels. Ids above 207 (and 300-702 in ``seg_volumes.csv``) are
derived composites, never voxel labels. The ids found in ixi_t1/seg are: 0, 1, 4, 11, 23-62, 69, 71-76,
81-95, 100-207.

Tissue classes (index = channel = label written by ``medfab sample``), the convention the 3D evaluation reads
(medfab.evaluation.volumes.tissues: a label map whose largest label is at most 3 is a tissue map):
    0 background, 1 csf (the ventricles), 2 grey_matter, 3 white_matter (with the brain stem)
Sulcal / extra-ventricular CSF (ids 1, 46) and the optic chiasm (69) are not among the tissue classes there, so
they are background here too; so is any non-zero id not listed (none occur in ixi_t1).
"""

from __future__ import annotations

import numpy as np

TISSUES = ("background", "csf", "grey_matter", "white_matter")

# (first id, last id, tissue, ROI names) -- inclusive id ranges
TABLE: tuple[tuple[int, int, str, str], ...] = (
    (0, 0, "background", "outside the brain"),
    (1, 1, "background", "sulcal / extra-cerebral CSF (DLMUSE id 1; darker on T1 than the ventricles)"),
    (46, 46, "background", "extra-ventricular CSF"),
    (69, 69, "background", "optic chiasm"),
    (4, 4, "csf", "3rd ventricle"),
    (11, 11, "csf", "4th ventricle"),
    (49, 52, "csf", "inferior lateral ventricles (R, L), lateral ventricles (R, L)"),
    (23, 23, "grey_matter", "right accumbens area"),
    (30, 32, "grey_matter", "left accumbens area, right and left amygdala"),
    (36, 39, "grey_matter", "caudate (R, L), cerebellum exterior (R, L)"),
    (47, 48, "grey_matter", "hippocampus (R, L)"),
    (55, 62, "grey_matter", "pallidum, putamen, thalamus, ventral DC (R, L each)"),
    (71, 73, "grey_matter", "cerebellar vermal lobules I-V, VI-VII, VIII-X"),
    (75, 76, "grey_matter", "basal forebrain (L, R)"),
    (100, 207, "grey_matter", "cortical parcels (Neuromorphometrics)"),
    (35, 35, "white_matter", "brain stem"),
    (40, 41, "white_matter", "cerebellum white matter (R, L)"),
    (81, 95, "white_matter", "frontal/occipital/parietal/temporal WM, fornix, internal capsule, corpus callosum"),
)


def lookup(max_id: int = 255) -> np.ndarray:
    """(max_id + 1,) uint8: tissue index of every label id; unlisted ids -> background (0)."""
    lut = np.zeros(max_id + 1, dtype=np.uint8)
    for lo, hi, tissue, _ in TABLE:
        lut[lo:hi + 1] = TISSUES.index(tissue)
    return lut


def markdown_table() -> str:
    """The mapping as a markdown table (docs/models.md prints it)."""
    rows = ["| label ids | tissue | ROIs |", "|---|---|---|"]
    for lo, hi, tissue, names in sorted(TABLE, key=lambda r: (TISSUES.index(r[2]), r[0])):
        rows.append(f"| {lo if lo == hi else f'{lo}-{hi}'} | {tissue} | {names} |")
    return "\n".join(rows)
