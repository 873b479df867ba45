"""Sample grids of the report's first section: synthetic images above real ones, per class."""

from __future__ import annotations

import numpy as np

from medfab.evaluation.families.base import safe_name


def sample_grids(ctx) -> list[tuple]:
    """Per class: a row of synthetic images above a row of real ones (seeded picks)."""
    from medfab.evaluation import plots

    rng = np.random.default_rng(ctx.cfg.seed)
    n = ctx.cfg.gallery
    figs = []
    for k, c in enumerate(ctx.classes):
        rows = []
        for label, ts in (("synthetic", ctx.synth), ("real", ctx.real)):
            idx = np.flatnonzero(ts.y == k)
            pick = rng.choice(idx, size=min(n, len(idx)), replace=False)
            rows.append((label, ts.x[pick]))
        p = plots.image_grid(rows, ctx.fig(f"samples_{safe_name(c)}.png"), title=c, per_row=n)
        figs.append((p, f"{c}: synthetic (top) beside real (bottom)"))
    return figs
