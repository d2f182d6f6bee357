"""benchmarks/reach_settle.py: a reach run on past its success says whether the hand stayed."""

from __future__ import annotations

import importlib.util
import json

import numpy as np

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
        assert abs(np.linalg.norm(e["offset_at_closest_m"]) - e["closest_m"]) < 2e-4
        # Commands lead the arm by a servo lag of millimetres to a few centimetres, never a room's width.
        assert len(e["commanded_offset_at_closest_m"]) == 3 and np.linalg.norm(e["commanded_offset_at_closest_m"]) < 0.5
        assert len(e["target_m"]) == 3
    assert robot["touched"] == sum(e["touched"] for e in robot["episodes"])
    assert result["command"].endswith("--seconds 0.4 --out " + str(out))
