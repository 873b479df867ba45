"""Every command in the README's ```bash blocks runs as written (with tiny sizes and budgets), in README order.

How a README command becomes a test command:
* the leading ``medfab`` is dropped (the CLI runs in-process), ``# comments`` and ``[optional parts]`` go;
* upper-case placeholders become temp paths (``PLACEHOLDERS``); a train command trains into its own run folder
  and a sample command samples into its own set; every later command uses the first ones (``RUN``, ``SYNTH``);
* sizes and budgets shrink (``TINY``): a flag's value is replaced, or the flag added where the command needs it;
* commands that cannot run in a test are listed in ``SKIP`` with the reason, and reported as skipped.

A new README command that uses a new placeholder fails with a message naming the command and the placeholder:
add the placeholder to ``PLACEHOLDERS`` (and, if it needs a tiny budget, a rule to ``TINY``).
"""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medfab.cli.main import app

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

# Command prefixes that cannot run in a test -> why.
SKIP = {
    "make demo": "sets up the venv and runs the whole demo pipeline (minutes); CI runs `make test`",
    "make test": "runs this test suite itself",
    "torchrun": "starts several processes under torchrun; tests/test_ddp.py covers two-process DDP",
    "medfab review serve": "a web server that runs until Ctrl-C; tests/test_review_app.py covers it",
    "medfab review": "needs the REVIEW folder that `review serve` makes; tests/test_review_*.py cover it",
    "medfab report EVAL --review": "needs the REVIEW folder that `review serve` makes",
    "python -m medfab.demo": "the whole demo pipeline (minutes), as `make demo`",
    "medfab train --data ../shared/data/": "trains on a real data set (../shared/data), which tests never use",
    "medfab sample --run runs/ixi64": "samples the run trained on real data above",
}
# Placeholder -> path (relative to the test's temp folder). RUN_k / SYNTH_k are made per command (see above).
PLACEHOLDERS = {
    "DIR": "data", "PATH": "data", "SPLIT": "split", "PHANTOM": "phantom", "PHANTOM3D": "phantom3d",
    "RUN": "run_1", "SYNTH": "synth_1", "EVAL": "eval", "ARUN": "arun", "report.html": "report.html",
    "DRUN": "drun", "DSYNTH": "dsynth",      # the diffusion run and its sampled set
    "RUN3D": "run3d", "SYNTH3D": "synth3d",  # the progan3d run on PHANTOM3D + its masks, and its sampled set
}
# Flag -> tiny value, for the README commands that start with the key (placeholders as written); every matching
# key applies, in order. "+" in front: add the flag when the command lacks it; "extra": arguments appended.
TINY = {
    "phantom": {"--n": "8", "--size": "16"},
    "train": {"--size": "32", "--minutes": None, "--kimg": "0.008", "+--kimg": "0.008", "+--batch-size": "4",
              "+--no-progress": ""},
    "sample": {"--balance-to": "18", "--n-per-class": "2", "--steps": "4", "+--no-progress": ""},
    "evaluate": {"--size": "16", "+--quick": "", "+--max-per-class": "8", "+--seeds": "1", "+--epochs": "1",
                 "+--no-progress": ""},
    "anomaly fit": {"+--size": "16", "+--kimg": "0.008", "+--no-progress": "", "+--set": "width=8",
                    "+--val-fraction": "0.5"},
    "anomaly eval": {"+--no-progress": ""},
    # a diffusion model samples its end-of-run grid with the full sampler: a few steps of a narrow net
    "train --data DIR --model diffusion": {"extra": ["--set", "steps=4", "--set", "base=8", "--set",
                                                      "grid_per_class=1"]},
}
N_PER_CLASS = 16  # images per class and split in DIR (so --balance-to 18 makes 2 per class)


def readme_commands() -> list[str]:
    """Every command line of every ```bash block, comments and continuation-only lines dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.DOTALL)
    out = []
    for block in blocks:
        block = re.sub(r"\\\n\s*", " ", block)  # a line ending in a backslash continues on the next
        for line in block.splitlines():
            cmd = line.split("#", 1)[0].strip()
            if cmd:
                out.append(cmd)
    return out


def _shrink(words: list[str], written: str) -> list[str]:
    rules: dict = {}
    for prefix, r in TINY.items():
        if written.startswith(prefix):
            rules.update(r)
    extra = rules.pop("extra", [])
    out, i = [], 0
    while i < len(words):
        w = words[i]
        if w in rules:
            if rules[w] is not None:  # replace the value (None: drop the flag and its value)
                out += [w, rules[w]]
            i += 2
            continue
        out.append(w)
        i += 1
    for flag, value in rules.items():
        if flag.startswith("+") and flag[1:] not in out:
            out += [flag[1:]] + ([value] if value else [])
    return out + extra


def to_test_command(line: str, tmp: Path, counters: dict[str, int]) -> list[str]:
    line = re.sub(r"\[[^\]]*\]", "", line)  # optional parts
    words = shlex.split(line)
    assert words[0] == "medfab", f"README command {line!r}: not a medfab command; add it to SKIP with the reason"
    words = words[1:]
    command = " ".join(words[:2]) if words[0] in ("data", "anomaly", "review") else words[0]
    made = {"train": "RUN", "sample": "SYNTH"}.get(command)
    out = []
    for w in words:
        head, _, rest = w.partition("/")
        if made and head == made and out and out[-1] == "--out":  # each writes its own: RUN -> run_1, run_2 ...
            counters[made] = counters.get(made, 0) + 1
            out.append(str(tmp / f"{made.lower()}_{counters[made]}"))
        elif head in PLACEHOLDERS:
            out.append(str(tmp / PLACEHOLDERS[head] / rest) if rest else str(tmp / PLACEHOLDERS[head]))
        elif re.fullmatch(r"[A-Z][A-Z0-9_]{1,}", head) and head not in ("K", "M", "N"):
            pytest.fail(f"README command {line!r} uses the placeholder {head}, unknown to this test: add it to "
                        "PLACEHOLDERS in tests/test_readme_commands.py")
        else:
            out.append(w)
    return _shrink(out, " ".join(words))


def _data(root: Path) -> Path:
    """DIR: train/ and test/ splits of two classes (no, yes) of 16x16 grey images; yes has a bright blob."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:16, :16]
    for split in ("train", "test"):
        for c in ("no", "yes"):
            (root / split / c).mkdir(parents=True)
            for i in range(N_PER_CLASS):
                a = rng.normal(80, 20, (16, 16))
                if c == "yes":
                    cy, cx = rng.integers(4, 12, 2)
                    a += 120 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8)
                Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(root / split / c / f"{c}{i}.png")
    return root


@pytest.mark.slow
@pytest.mark.timeout(900)  # about 2 minutes on an idle 2-core machine; a shared one can take several times that
def test_every_readme_command_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # README paths such as configs/vae.yaml are relative to the repository
    _data(tmp_path / "data")
    runner, counters, ran, skipped, failed = CliRunner(), {}, [], [], []
    for line in readme_commands():
        reason = next((why for prefix, why in SKIP.items() if line.startswith(prefix)), None)
        if reason:
            skipped.append(f"{line}  ({reason})")
            continue
        args = to_test_command(line, tmp_path, counters)
        t0 = time.perf_counter()
        res = runner.invoke(app, args)
        ran.append(f"{time.perf_counter() - t0:5.1f} s  {line}")
        if res.exit_code != 0 or "Traceback" in res.output:
            failed.append(f"README command failed: {line}\n  run as: medfab {shlex.join(args)}\n  exit "
                          f"{res.exit_code}: {(res.output or repr(res.exception))[-800:]}")
    print("\n".join(["ran:", *ran, "skipped:", *skipped]))
    assert not failed, "\n\n".join(failed)
    assert len(ran) >= 10, ran  # the README's pipeline is there: inspect ... anomaly eval
