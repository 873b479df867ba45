"""``medfab report``: ONE self-contained HTML file from an evaluation folder.

Figures are embedded as base64 PNG data URIs and the CSS is inlined, so the file can be mailed or archived
alone: no external assets, no JavaScript. The page: a summary (headline cards, family status, image counts),
then one section per family, each with its plain-language verdicts (:mod:`medfab.report.verdicts`), its
tables (:mod:`medfab.report.tables`) and its figures, then the optional anomaly-detection section and the
configuration.

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

_HERE = Path(__file__).parent

_TITLES = {
    "fidelity": "Fidelity: do synthetic images look like real ones?",
    "diversity": "Diversity: do they vary as much as real ones?",
    "class": "Class fidelity: do they show the requested class?",
    "utility": "Utility: does training on them help a classifier on real data?",
    "privacy": "Privacy: are they copies of training images?",
}
_INTROS = {
    "fidelity": "Intensity histograms, brain mass and Fréchet / kernel distances between feature "
    "distributions. Each synthetic figure sits beside the same figure for two disjoint halves of the real "
    "data.",
    "diversity": "MS-SSIM between random pairs within a class (higher = more alike) and precision / recall / "
    "density / coverage of the synthetic features against real ones.",
    "class": "A CNN trained on real images classifies each synthetic image; a good generator's images are "
    "recognised about as often as real test images.",
    "utility": "One small CNN per training set and seed, always tested on the real test set (train "
    "synthetic, test real). Rows: model x training data; columns: metrics as mean ± std over seeds.",
    "privacy": "Distances from synthetic images to their nearest training image, compared with held-out real "
    "images, and a membership-inference attack.",
}


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


def write_report(eval_dir: str | Path, out: str | Path, *, title: str = "medfab evaluation report") -> Path:
    out = Path(out)
    html = render_report(eval_dir, title=title)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


def render_report(eval_dir: str | Path, *, title: str = "medfab evaluation report") -> str:
    """The report's HTML text for the evaluation folder ``eval_dir``."""
    import jinja2

    from medfab.evaluation.results import read_results

    eval_dir = Path(eval_dir)
    res = read_results(eval_dir).to_json()
    sections = [_family_section(name, res, eval_dir) for name in res["families"]]
    anomaly = _anomaly_section(eval_dir)
    if anomaly is not None:
        sections.append(anomaly)
    samples = [_figure(eval_dir, fig["file"], fig.get("caption", "")) for fig in res.get("samples", [])]
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
        config=json.dumps(res.get("config", {}), indent=1),
        status_rows=[(s.id, s.title.split(":")[0], s.status, s.reason, s.seconds) for s in sections],
    )


def _family_section(name: str, res: dict, eval_dir: Path) -> Section:
    fam = res["families"][name]
    sec = Section(
        id=name,
        title=_TITLES.get(name, name),
        intro=_INTROS.get(name, ""),
        status=fam["status"],
        reason=fam.get("reason") or "",
        seconds=fam.get("seconds", 0.0),
    )
    if fam["status"] != "ok":
        return sec
    d = fam["data"]
    sec.verdicts = V.SECTIONS[name](res) if name in V.SECTIONS else []
    builders = {
        "fidelity": lambda: T.fidelity(d),
        "diversity": lambda: T.diversity(d),
        "class": lambda: T.class_fidelity(d, res["classes"]),
        "utility": lambda: T.utility(d),
        "privacy": lambda: T.privacy(d),
    }
    sec.tables = builders[name]() if name in builders else []
    sec.figures = [
        f for f in (_figure(eval_dir, g["file"], g.get("caption", "")) for g in fam["figures"]) if f
    ]
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
