"""Typed per-family results: model_dump -> JSON -> model_validate gives back the same objects."""

from __future__ import annotations

import json

import pytest
from _report_fixture import make_eval

from medfab.evaluation import families as F
from medfab.evaluation.families.base import Skipped, clean
from medfab.evaluation.results import FamilyResult, Results, read_results, write_results


def _roundtrip(obj):
    return type(obj).model_validate(json.loads(json.dumps(clean(obj.model_dump()), allow_nan=False)))


def test_every_2d_family_round_trips(tmp_path):
    res = read_results(make_eval(tmp_path))
    kinds = {
        "fidelity": F.FidelityResult,
        "diversity": F.DiversityResult,
        "class": F.ClassFidelityResult,
        "utility": F.UtilityResult,
        "privacy": F.PrivacyResult,
    }
    for name, kind in kinds.items():
        data = res.families[name].data
        assert isinstance(data, kind), name
        assert _roundtrip(data) == data
    fid = res.families["fidelity"].data
    skipped = fid.distances["featurenet"]["ModerateDemented"].fd.synth
    assert isinstance(skipped, Skipped) and "at least 2" in skipped.skipped
    assert isinstance(fid.distances["radiomic"], Skipped)
    assert fid.distances["featurenet"]["overall"].fd.synth.value == 12.0
    assert res.families["diversity"].data.collapsed() == ["ModerateDemented"]
    # keys a metric module adds later pass through (typed where the report reads, open elsewhere)
    u = F.UtilityResult.model_validate(
        {"table": [{"training_data": "real", "accuracy": 0.7, "new_metric": 1}]}
    )
    assert _roundtrip(u).table[0].new_metric == 1


def test_volumes_result_round_trips_with_skipped_values(tmp_path):
    v = F.VolumesResult.model_validate(
        {
            "size": 64,
            "brain_volume": {"ks": 0.1, "ks_baseline": 0.08, "real_mean": 0.3, "synth_mean": 0.31},
            "tissues": {
                "grey matter": {"ks": 0.2, "ks_baseline": 0.15},
                "white matter": {"skipped": "2 values"},
            },
            "msssim": {"synth": {"mean": 0.4, "std": 0.1}, "real": {"skipped": "too small"}},
            "voxel_variance": {"real": 0.02, "synth": float("nan"), "ratio": None},
            "privacy": {"min_synth": 0.1, "min_holdout": 0.12, "flagged": [], "n_synth": 10},
            "distances": {"skipped": "3D features need at least 3 real volumes"},
        }
    )
    assert v.voxel_variance.synth != v.voxel_variance.synth  # NaN in memory...
    back = _roundtrip(v)
    assert isinstance(back.voxel_variance.synth, Skipped)  # ...a reason in results.json
    assert back.tissues["white matter"] == Skipped(skipped="2 values") and back.privacy.flagged == []
    assert isinstance(back.distances, Skipped) and isinstance(back.msssim.real, Skipped)
    res = Results(classes=[], families={"volumes": FamilyResult(data=back)})
    write_results(res, tmp_path / "results.json")
    assert read_results(tmp_path).families["volumes"].data == back


def test_a_typed_result_is_checked_on_read(tmp_path):
    res = read_results(make_eval(tmp_path))
    raw = res.to_json()
    raw["families"]["volumes"] = {"status": "ok", "data": {"family": "volumes", "size": "big"}}
    (tmp_path / "results.json").write_text(json.dumps(raw))
    from medfab.errors import MedfabError

    with pytest.raises(MedfabError, match="does not match results schema version 2"):
        read_results(tmp_path)
