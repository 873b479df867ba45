"""``medfab report``: ONE self-contained HTML file from an evaluation folder.

Figures are embedded as base64 PNG data URIs and the CSS is inlined, so the file can be mailed or archived
alone: no external assets, no JavaScript. The page: a summary (headline cards, family status, image counts),
then one section per family, each with its plain-language verdicts and tables built from the family's typed
result (:mod:`medfab.report.sections`, one module per family, 3D volumes included) and its figures, then the
optional anomaly-detection and expert-review sections and the configuration.

Optional anomaly-detection section: rendered when ``EVAL/anomaly/results.json`` exists, with this shape::

    {
      "rows": [                                   # one row per method x training kind
        {"method": "VAE recon. error", "training": "real",   # free text
         "accuracy": 0.91, "precision": 0.88, "recall": 0.93, "f1": 0.90,
         "auc": 0.95}                             # auc optional
      ],
      "figures": ["roc.png", {"file": "error_maps.png", "caption": "..."}],   # PNG paths, relative to
                                                  # EVAL/anomaly/ (or to EVAL/, or absolute); str or dict
      "note": "optional sentence shown under the table"
    }

A bare list of rows is accepted too. Values that are not finite numbers print as "—".
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from medfab.report import tables as T
from medfab.report import verdicts as V
from medfab.report.sections import SECTIONS

_HERE = Path(__file__).parent

@dataclass
class FigureView:
    uri: str
    caption: str


@dataclass
class Section:
    id: str
    title: str
    intro: str = ""
    status: str = "ok"
    reason: str = ""
    seconds: float = 0.0
    verdicts: list = field(default_factory=list)
    tables: list = field(default_factory=list)
    figures: list = field(default_factory=list)


def write_report(
    eval_dir: str | Path,
    out: str | Path,
    *,
    title: str = "medfab evaluation report",
    review_dir: str | Path | None = None,
) -> Path:
    out = Path(out)
    html = render_report(eval_dir, title=title, review_dir=review_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


def render_report(
    eval_dir: str | Path, *, title: str = "medfab evaluation report", review_dir: str | Path | None = None
) -> str:
    """The report's HTML text for the evaluation folder ``eval_dir`` (+ an expert review, see medfab.review)."""
    import jinja2

    from medfab.evaluation.results import read_results

    eval_dir = Path(eval_dir)
    res = read_results(eval_dir)
    sections = [_family_section(name, res, eval_dir) for name in res.families]
    anomaly = _anomaly_section(eval_dir)
    if anomaly is not None:
        sections.append(anomaly)
    if review_dir is not None:
        sections.append(_review_section(review_dir))
    samples = [_figure(eval_dir, fig.file, fig.caption) for fig in res.samples]
    warnings = [v for s in sections for v in s.verdicts if v.level in ("warn", "bad")]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_HERE)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("template.html").render(
        title=title,
        css=(_HERE / "style.css").read_text(),
        res=res,
        cards=V.headline(res),
        counts=T.counts(res),
        sections=sections,
        samples=[s for s in samples if s],
        warnings=warnings,
        config=json.dumps(res.config, indent=1),
        status_rows=[(s.id, s.title.split(":")[0], s.status, s.reason, s.seconds) for s in sections],
    )


def _family_section(name: str, res, eval_dir: Path) -> Section:
    """One family's section: its verdicts and tables from its typed result, then its figures."""
    fam = res.families[name]
    mod = SECTIONS.get(name)
    sec = Section(
        id=name,
        title=mod.TITLE if mod else name,
        intro=mod.INTRO if mod else "",
        status=fam.status,
        reason=fam.reason or "",
        seconds=fam.seconds,
    )
    if fam.status != "ok":
        return sec
    if mod is not None and isinstance(fam.data, mod.RESULT):
        sec.verdicts = mod.verdicts(fam.data, res)
        sec.tables = mod.tables(fam.data, res)
    sec.figures = [f for f in (_figure(eval_dir, g.file, g.caption) for g in fam.figures) if f]
    return sec


def _anomaly_section(eval_dir: Path) -> Section | None:
    path = eval_dir / "anomaly" / "results.json"
    if not path.is_file():
        return None
    sec = Section(
        id="anomaly",
        title="Anomaly detection",
        intro="Reconstruction-error anomaly detection, by method and kind of training data.",
    )
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        sec.status, sec.reason = "error", f"{path} is not valid JSON: {e}"
        return sec
    d = {"rows": raw} if isinstance(raw, list) else raw if isinstance(raw, dict) else {}
    d["rows"] = [{k: _finite(v) for k, v in r.items()} for r in d.get("rows") or [] if isinstance(r, dict)]
    sec.tables = T.anomaly(d)
    for fig in d.get("figures") or []:
        file, cap = (fig, "") if isinstance(fig, str) else (fig.get("file", ""), fig.get("caption", ""))
        for base in (eval_dir / "anomaly", eval_dir):
            view = _figure(base, file, cap or Path(file).stem.replace("_", " "))
            if view:
                sec.figures.append(view)
                break
    return sec


def _review_section(review_dir: str | Path) -> Section:
    from medfab.review import report_section as R

    res = R.load_review(review_dir)
    return Section(id="review", title="Expert review: can experts tell them apart?", intro=R.INTRO,
                   verdicts=R.verdicts(res), tables=R.tables(res))


def _finite(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _figure(base: Path, file: str, caption: str) -> FigureView | None:
    """A PNG as a data URI; a missing file is skipped (the caption says what is missing)."""
    p = Path(file) if Path(file).is_absolute() else base / file
    if not p.is_file():
        return None
    data = p.read_bytes()
    if not data.startswith(b"\x89PNG"):  # only PNGs are embedded; anything else is left out
        return None
    return FigureView("data:image/png;base64," + base64.b64encode(data).decode("ascii"), caption)
