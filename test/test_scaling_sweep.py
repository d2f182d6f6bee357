"""A study expands into runs; a sweep of real tiny training runs (the `test` preset, a few steps,
on small LeRobot v3 datasets written here) appends one result per run, resumes without repeating
finished runs, refuses a changed protocol; the Ray runner writes the same results as the local one."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from model_fixtures import make_episodes

from gen0_policy.data.lerobot import LeRobotWriter
from gen0_policy.embodiment import load_embodiment
from gen0_policy.errors import ConfigError, Gen0Error
from gen0_policy.model.config import preset
from gen0_policy.model.counting import describe
from gen0_policy.scaling.study import Study, load_study
from gen0_policy.scaling.sweep import RESULTS, _mixture, read_results, run_sweep

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "config" / "scaling" / "smoke.yaml"
TIMING = "timing"  # the only part of a result that may differ between runners


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke study's five datasets: synthetic reaches (model_fixtures) for two robots."""
    root = tmp_path_factory.mktemp("scaling_data")
    layout = {
        "pretrain_panda": ("panda", 3, 1, "reach"),
        "pretrain_ur5e": ("ur5e", 3, 2, "reach"),
        "pretrain_heldout": ("panda", 2, 3, "reach"),
        "downstream": ("ur5e", 2, 4, "press"),
        "downstream_heldout": ("ur5e", 2, 5, "press"),
    }
    for name, (robot, count, seed, task) in layout.items():
        with LeRobotWriter(root / name, load_embodiment(robot), fps=10.0) as writer:
            for episode in make_episodes(robot, count, seed=seed):
                episode.task = task
                writer.add_episode(episode)
    return root


@pytest.fixture(scope="module")
def local_sweep(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The smoke study run locally in three pieces, as a long study would be."""
    study = load_study(SMOKE)
    out = tmp_path_factory.mktemp("scaling_local")
    first = run_sweep(study, out, data_root, max_runs=2, log=lambda _: None)
    first_ckpts = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("model.safetensors")}
    # A crash after a run's training but before its result line was whole: the line is cut short.
    lines = (out / RESULTS).read_text().splitlines(keepends=True)
    (out / RESULTS).write_text(lines[0] + lines[1][:40])
    second = run_sweep(study, out, data_root, log=lambda _: None)
    third = run_sweep(study, out, data_root, log=lambda _: None)
    pieces = (first, second, third)
    return {"study": study, "out": out, "pieces": pieces, "first_ckpts": first_ckpts, "cut": json.loads(lines[1])}


def test_study_expands_into_runs() -> None:
    study = load_study(SMOKE)
    ids = [r.id for r in study.runs()]
    assert ids[:2] == ["pretrain-tiny-d2-s0", "pretrain-tiny-d4-s0"]
    assert len(ids) == len(set(ids)) == 6
    data = yaml.safe_load(SMOKE.read_text())
    data["pretrain"]["end_seeds"] = [1, 2]
    data["pretrain"]["episodes"] = [2, 3, 4]
    ends = Study.from_dict(data).pretrain_runs()
    assert [(r.episodes, r.seed) for r in ends] == [(2, 0), (2, 1), (2, 2), (3, 0), (4, 0), (4, 1), (4, 2)]
    assert Study.from_dict(data).hash != study.hash


def test_a_study_dataset_can_learn_the_rest_after_its_episodes_end() -> None:
    """`hold_after_end` means in a study what it means in a training config (train/config.py)."""
    data = yaml.safe_load(SMOKE.read_text())
    data["pretrain"]["datasets"][0]["hold_after_end"] = True
    study = Study.from_dict(data)
    held, plain = study.pretrain.datasets[:2]
    assert held.hold_after_end and not plain.hold_after_end and study.hash != load_study(SMOKE).hash
    episodes = make_episodes("panda", 2, seed=1)
    sources = _mixture([(held, episodes[0]), (plain, episodes[1])])
    assert [s.hold_after_end for s in sources] == [True, False]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(pretrian={}), "unknown study keys"),
        (lambda d: d["pretrain"]["train"].update(out_dir="x"), "set by the sweep itself"),
        (lambda d: d["pretrain"]["train"].update(stepz=3), "unknown train config keys"),
        (lambda d: d["pretrain"].update(episodes=[0, 4]), "positive integers"),
        (lambda d: d["efficiency"]["base"].update(episodes=99), "not one of the pretrain runs"),
        (lambda d: d["pretrain"]["datasets"][0].update(wieght=2), "unknown dataset keys"),
    ],
)
def test_bad_studies_are_refused_before_anything_runs(change, message: str) -> None:
    data = yaml.safe_load(SMOKE.read_text())
    change(data)
    with pytest.raises(ConfigError, match=message):
        Study.from_dict(data)


def test_sweep_resumes_without_repeating_finished_runs(local_sweep: dict) -> None:
    study, out = local_sweep["study"], local_sweep["out"]
    first, second, third = local_sweep["pieces"]
    assert [r["id"] for r in first] == ["pretrain-tiny-d2-s0", "pretrain-tiny-d4-s0"]
    # The run whose line was cut is done again, without training again (its checkpoints stay as
    # they were) and to the same result; then the runs not yet done, those from the base last (they need
    # its checkpoint; scratch runs do not wait for it); then nothing.
    rest = study.runs()[1:]
    expected = [r.id for r in rest if r.arm != "base"] + [r.id for r in rest if r.arm == "base"]
    assert [r["id"] for r in second] == expected
    cut, again = dict(local_sweep["cut"]), dict(second[0])
    assert cut.pop(TIMING) != again.pop(TIMING)
    assert again == cut
    assert third == []
    records = read_results(out)
    assert sorted(r["id"] for r in records) == sorted(r.id for r in study.runs())
    assert {p: p.stat().st_mtime_ns for p in local_sweep["first_ckpts"]} == local_sweep["first_ckpts"]
    # What a result says is what happened.
    counts = describe(preset("test", language_encoder="hash"))
    steps = study.pretrain.train
    by_id = {r["id"]: r for r in records}
    d4 = by_id["pretrain-tiny-d4-s0"]
    assert d4["model"]["parameters"] == counts["parameters"]["total"]
    assert d4["compute_flops"]["pretrain"] == counts["flops"]["train_per_sample"] * steps["batch_size"] * steps["steps"]
    assert d4["data"] == {"episodes": 4, "frames": 4 * 24, "hours": round(4 * 24 / 10 / 3600, 6)}
    assert d4["downstream_data"]["episodes"] == study.downstream.demos
    assert by_id["efficiency-scratch-n1-s0"]["data"]["episodes"] == 1
    for r in records:
        assert r["study_hash"] == study.hash
        errors = [r[k] for k in ("pretrain_error", "downstream_error") if k in r]
        assert errors and all(e > 0 and e == e for e in errors)
        assert (out / next(iter(r["checkpoints"].values())) / "latest").is_file()
    # Post-training from the base is not training from scratch.
    assert by_id["efficiency-base-n2-s0"]["downstream_error"] != by_id["efficiency-scratch-n2-s0"]["downstream_error"]


def test_a_changed_protocol_is_refused(local_sweep: dict, data_root: Path) -> None:
    data = local_sweep["study"].to_dict()
    data["downstream"]["demos"] = 1
    with pytest.raises(ConfigError, match="another version of the study"):
        run_sweep(Study.from_dict(data), local_sweep["out"], data_root, log=lambda _: None)
    with pytest.raises(Gen0Error, match="asks for 9 episodes but the datasets hold 6"):
        data = local_sweep["study"].to_dict()
        data["pretrain"]["episodes"] = [9]
        data.pop("efficiency")
        run_sweep(Study.from_dict(data), local_sweep["out"].parent / "too_big", data_root, log=lambda _: None)


@pytest.mark.slow  # starting Ray and its workers takes 20-40 s on the 2-core machine
def test_ray_runner_matches_local(
    local_sweep: dict, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two pretrain runs as Ray tasks on a local Ray instance started (and stopped) here."""
    import ray

    # Ray's worker processes inherit this environment: they import this checkout's gen0_policy.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    # Counts are cached per model config in the study folder; sharing the cache saves each worker
    # seconds of tracing (they are checked against the model's own counting in the test above).
    shutil.copytree(local_sweep["out"] / "counts", tmp_path / "counts")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024**2, log_to_driver=False)
    try:
        new = run_sweep(local_sweep["study"], tmp_path, data_root, backend="ray", only="^pretrain", log=lambda _: None)
    finally:
        ray.shutdown()
    assert sorted(r["id"] for r in new) == ["pretrain-tiny-d2-s0", "pretrain-tiny-d4-s0"]
    local = {r["id"]: r for r in read_results(local_sweep["out"])}
    for record in read_results(tmp_path):
        record.pop(TIMING)
        expected = dict(local[record["id"]])
        expected.pop(TIMING)
        assert json.dumps(record, sort_keys=True) == json.dumps(expected, sort_keys=True)
    shutil.rmtree(tmp_path / "runs")


def test_success_rolls_out_the_runs_checkpoints_resumes_and_reaches_the_report(
    local_sweep: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`gen0 scaling success`: each chosen run's post-trained checkpoint driven in the simulator on the
    downstream task (real MuJoCo, the robot's own cameras), one line per run; run again it rolls out
    nothing; another protocol is refused; the report shows the successes beside the errors."""
    from gen0_policy.cli import main
    from gen0_policy.scaling.report import write_report
    from gen0_policy.scaling.success import SUCCESS, measure_success, read_success

    out = tmp_path / "study"
    shutil.copytree(local_sweep["out"], out)
    chosen = "^pretrain-tiny-d4-s0$|^efficiency-base-n2-s0$"
    args = ["scaling", "success", str(out), "--embodiment", "ur5e", "--task", "press_button", "--only", chosen]
    assert main([*args, "--episodes", "1", "--seed", "40000"]) == 0
    printed = capsys.readouterr().out
    lines = read_success(out)
    assert json.loads(printed[printed.rindex("{\n") :]) == {x["id"]: f"{x['successes']}/1" for x in lines}
    assert sorted(line["id"] for line in lines) == ["efficiency-base-n2-s0", "pretrain-tiny-d4-s0"]
    for line in lines:
        assert line["successes"] in (0, 1) and len(line["episode_seconds"]) == 1
        assert line["protocol"] == {
            "embodiment": "ur5e", "task": "press_button", "episodes": 1, "seed": 40000, "camera_size": None
        }  # fmt: skip
        assert (out / line["checkpoint"] / "latest").is_file()
    logs: list[str] = []
    again = measure_success(out, "ur5e", "press_button", chosen, episodes=1, seed=40000, log=logs.append)
    assert again == lines and logs[0].startswith("2 runs measured, 0 to roll out")
    with pytest.raises(ConfigError, match="another protocol"):
        measure_success(out, "ur5e", "press_button", chosen, episodes=2, seed=40000, log=logs.append)
    with pytest.raises(ConfigError, match="no finished run"):
        measure_success(out, "ur5e", "press_button", "^nothing$", log=logs.append)
    assert (out / SUCCESS).read_text().count("\n") == 2
    text = write_report(out, tmp_path / "docs", bootstrap=5).read_text()
    assert "## Closed-loop success" in text
    d4 = next(x for x in lines if x["id"] == "pretrain-tiny-d4-s0")
    row = next(x for x in text.splitlines() if x.startswith("| pretrain-tiny-d4-s0 |"))
    assert row.endswith(f"| {d4['successes']}/1 |")
