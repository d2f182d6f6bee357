"""benchmarks/reach_settle.py: a reach run on past its success says whether the hand stayed."""

from __future__ import annotations

import importlib.util
import json

from conftest import REPO


def test_reach_settle_reports_touch_and_rest_per_seed(tmp_path) -> None:
    spec = importlib.util.spec_from_file_location("reach_settle", REPO / "benchmarks" / "reach_settle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "settle.json"
    result = module.main(["--embodiments", "panda", "--seeds", "2", "--seconds", "0.4", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    robot = result["robots"]["panda"]
    assert [e["seed"] for e in robot["episodes"]] == [100, 101]
    for e in robot["episodes"]:
        assert 0 <= e["closest_m"] <= e["final_m"] + 1e-9 and 0 <= e["time_within_fraction"] <= 1
        assert e["touched"] == (e["first_within_s"] is not None) == (e["closest_m"] < 0.03)
        assert e["ends_within"] == (e["final_m"] < 0.03)
    assert robot["touched"] == sum(e["touched"] for e in robot["episodes"])
    assert result["command"].endswith("--seconds 0.4 --out " + str(out))
