"""``medfab evaluate --dims 3``: the volumes family on NIfTI folders, written as results.json like the 2D run.

Output folder ``EVAL``: results.json (one family, ``volumes``), eval_config.json, figures/*.png, errors.log
when the family fails unexpectedly (see :mod:`medfab.evaluation.run`).
"""

from __future__ import annotations

import json
from pathlib import Path


def evaluate_volumes(cfg, *, progress: bool = True):
    """Run the volume family described by ``cfg`` (an :class:`~medfab.evaluation.run.EvalConfig`, dims 3)."""
    import medfab
    from medfab.evaluation.families import volumes as fam
    from medfab.evaluation.results import Figure, Results, write_results
    from medfab.evaluation.run import _progress, run_family

    cfg = cfg.model_copy(update={"families": ["volumes"], "features": []})
    out = Path(cfg.out)
    ctx = fam.load(cfg, out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "errors.log").unlink(missing_ok=True)
    (out / "eval_config.json").write_text(json.dumps(cfg.model_dump(), indent=1))
    res = Results(medfab_version=medfab.__version__, config=cfg.model_dump(), classes=[], counts=ctx.counts())
    res.samples = [Figure(file=str(p.relative_to(out)), caption=c) for p, c in fam.sample_figures(ctx)]
    with _progress(progress) as bar:
        task = bar.add_task("evaluate", total=1)
        ctx.step = lambda s: bar.update(task, description=f"[bold]volumes[/]: {s}")
        res.families["volumes"] = run_family("volumes", fam.compute, ctx)
        bar.advance(task)
        f = res.families["volumes"]
        colour = {"ok": "green", "skipped": "yellow", "error": "red"}[f.status]
        bar.console.print(
            f"[{colour}]{f.status:>7}[/] volumes ({f.seconds:.1f} s)" + (f": {f.reason}" if f.reason else "")
        )
    write_results(res, out / "results.json")
    return res
