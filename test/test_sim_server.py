"""The simulated robot without ROS: pacing against the wall clock, commands and their refusals, episodes
on a monotonic clock, ticks on the update rate, camera snapshots, and the threads reporting through
callbacks."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from conftest import wait_until
from gen0_policy.commands import TrajectoryCommand
from gen0_policy.errors import CommandError, ConfigError, Gen0Error
from gen0_policy.sim import server as server_module
from gen0_policy.sim.server import (
    MAX_START_AHEAD,
    SLOW_COMMAND_S,
    RealTimePacer,
    SimConfig,
    SimServer,
    SnapshotRenderer,
)


def test_the_pacer_waits_to_match_the_real_time_factor_and_does_not_burst_to_catch_up() -> None:
    pacer = RealTimePacer(2.0, sim_now=10.0, wall_now=100.0)
    assert pacer.delay(11.0, 100.0) == pytest.approx(0.5)  # 1 sim s at 2x = 0.5 wall s
    assert pacer.delay(11.0, 100.4) == pytest.approx(0.1)
    assert pacer.delay(11.0, 100.7) == 0.0  # behind by 0.2 s: no wait, keep the schedule
    assert pacer.delay(11.0, 102.0) == 0.0  # behind by 1.5 s: start over from here
    assert pacer.delay(11.2, 102.0) == pytest.approx(0.1)
    assert RealTimePacer(0.0, 0.0, 0.0).delay(1e6, 0.0) == 0.0  # as fast as possible


def test_config_takes_node_parameters_by_name_and_refuses_bad_rates() -> None:
    config = SimConfig.from_mapping({"update_rate": 100.0, "camera_width": 64, "camera_height": 48, "other": 1})
    assert config.update_rate == 100.0 and config.camera_size == (64, 48) and config.embodiment == "panda"
    assert SimConfig(camera_width=64).camera_size is None  # both or neither
    for bad in ({"update_rate": 0.0}, {"status_rate": -1.0}, {"camera_rate": -1.0}, {"real_time_factor": -0.5}):
        with pytest.raises(ConfigError, match="update_rate and status_rate must be > 0"):
            SimConfig(**bad)


@pytest.fixture(scope="module")
def server() -> SimServer:
    return SimServer(SimConfig(task="reach", camera_width=32, camera_height=24))


def test_ticks_land_on_the_update_rate_and_report_the_state(server: SimServer) -> None:
    states: list[tuple[float, np.ndarray]] = []
    server.on_state = lambda now, q, qd, effort: states.append((now, q))
    start = server.now()
    for k in range(1, 6):  # 200 Hz on a 2 ms timestep: the whole steps nearest each 5 ms multiple, 2 or 3
        server.step(start + k * 0.005)
    times = np.array([t for t, _ in states]) - start
    np.testing.assert_allclose(times, [0.004, 0.01, 0.014, 0.02, 0.024], atol=1e-9)
    assert states[-1][1].shape == (server.env.embodiment.dof,)


def test_wall_clock_stamps_and_bad_commands_are_refused_without_effect(server: SimServer) -> None:
    arm = server.env.embodiment.controller("joint_trajectory_controller")
    home = server.env.embodiment.home[server.env.embodiment.joint_indices(arm.joints)]
    before = server.controllers.targets(server.now())
    future = TrajectoryCommand(arm.joints, [0.1], home[None], start_time=server.now() + MAX_START_AHEAD + 1)
    with pytest.raises(CommandError, match="stamp with sim time"):
        server.command_trajectory("joint_trajectory_controller", future)
    with pytest.raises(CommandError, match="has 2 values"):
        server.command_positions("gripper_controller", np.zeros(2))
    np.testing.assert_array_equal(server.controllers.targets(server.now()), before)
    server.command_trajectory("joint_trajectory_controller", TrajectoryCommand(arm.joints, [0.1], home[None]))


def test_commands_run_from_the_next_tick_and_a_slow_install_is_named_in_the_log(
    server: SimServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Checked at once, installed by the physics tick (as joint_trajectory_controller takes a goal from its
    realtime buffer); an install that takes long delays the clock, and the log says which command it was."""
    arm = server.env.embodiment.controller("joint_trajectory_controller")
    idx = server.env.embodiment.joint_indices(arm.joints)
    goal = server.env.embodiment.home[idx] + 0.1
    command = TrajectoryCommand(arm.joints, [0.1, 0.2], np.stack([goal, goal]))
    later = server.now() + 1.0
    before = server.controllers.targets(later)
    with caplog.at_level("WARNING", logger="gen0_policy.sim.server"):
        server.command_trajectory("joint_trajectory_controller", command)
        np.testing.assert_array_equal(server.controllers.targets(later), before)  # not before the tick
        server.step(server.now() + 0.005)
        np.testing.assert_allclose(server.controllers.targets(later)[idx], goal)
        assert not caplog.records  # a normal command: nothing said
        install = server.controllers.command_trajectory
        monkeypatch.setattr(
            server.controllers, "command_trajectory", lambda *a: (time.sleep(2 * SLOW_COMMAND_S), install(*a))
        )
        server.command_trajectory("joint_trajectory_controller", command)
        server.step(server.now() + 0.005)
    assert "a 2-point trajectory for joint_trajectory_controller (0.2 s long) took" in caplog.text


def ticking_sim() -> tuple[SimServer, list[float]]:
    """A reach sim without cameras, and the sim times of its physics ticks as they happen."""
    sim = SimServer(SimConfig(task="reach", cameras=False))
    ticks: list[float] = []
    sim.on_state = lambda now, *_: ticks.append(now)
    return sim, ticks


def slowed(fn, ticks: list[float], during: list[int], seconds: float = 0.5):
    """``fn`` taking ``seconds`` longer (a thread starved of the CPU, a world slow to compile), counting
    into ``during`` the physics ticks meanwhile."""

    def slow(*args):
        before = len(ticks)
        time.sleep(seconds)
        during.append(len(ticks) - before)
        return fn(*args)

    return slow


def test_a_slow_command_callback_never_stops_the_physics(monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed-loop run stalled 60 s with the physics thread waiting for the lock a command callback
    held; a callback now only checks its command and queues it for the next tick."""
    sim, ticks = ticking_sim()
    follower, during = sim.controllers.controller("joint_trajectory_controller"), []
    monkeypatch.setattr(follower, "validate", slowed(follower.validate, ticks, during))
    arm = sim.env.embodiment.controller("joint_trajectory_controller")
    home = sim.env.embodiment.home[sim.env.embodiment.joint_indices(arm.joints)]
    sim.start()
    try:
        wait_until(lambda: ticks, timeout=30, what="the first physics tick")
        sim.command_trajectory("joint_trajectory_controller", TrajectoryCommand(arm.joints, [0.1], home[None]))
    finally:
        sim.stop()
    assert during[0] >= 20, f"the physics ticked {during[0]} times in 0.5 s of a command callback (200 Hz)"


def test_resets_keep_the_clock_monotonic_and_an_unknown_task_changes_nothing(server: SimServer) -> None:
    server.step(server.now() + 0.05)
    before = server.status()
    status = server.reset("", server.next_seed(-1))
    assert (status.seed, status.episode) == (before.seed + 1, before.episode + 1)
    assert status.stamp >= before.stamp and status.elapsed == 0.0 and not status.success
    with pytest.raises(Gen0Error, match="available tasks are"):
        server.reset("juggle", 7)
    assert server.status().episode == status.episode and server.next_seed(5) == 5


def test_a_task_switch_builds_the_new_world_while_the_old_one_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiling a world (up to a second or two) under the physics lock stopped /clock, and a policy's
    clock watchdog then faulted the run_task goal of a closed-loop run that switched to stack."""
    sim, ticks = ticking_sim()
    during: list[int] = []
    monkeypatch.setattr(sim, "_build", slowed(sim._build, ticks, during))
    sim.start()
    try:
        wait_until(lambda: ticks, timeout=30, what="the first physics tick")
        status = sim.reset("push", 3)
        wait_until(lambda: ticks[-1] > status.stamp, timeout=30, what="a tick in the new world")
    finally:
        sim.stop()
    assert during[0] >= 20, f"the physics ticked {during[0]} times in 0.5 s of building (200 Hz configured)"
    assert (status.task, status.seed) == ("push", 3) and sim.env.task_name == "push"
    assert np.all(np.diff(ticks) > 0)  # the clock runs on across the switch, never back


def test_camera_snapshots_render_the_watched_cameras_at_their_rate() -> None:
    images: list[tuple[float, dict]] = []
    statuses: list = []
    config = SimConfig(task="reach", camera_rate=20.0, camera_width=32, camera_height=24, real_time_factor=0.0)
    sim = SimServer(
        config,
        on_images=lambda now, frames: images.append((now, frames)),
        on_status=statuses.append,
        watched=lambda: ["wrist"],
    )
    sim.start()
    try:
        wait_until(lambda: len(images) >= 3, timeout=60, what="three camera snapshots")
    finally:
        sim.stop()
    assert all(set(frames) == {"wrist"} and frames["wrist"].shape == (24, 32, 3) for _, frames in images)
    gaps = np.diff([now for now, _ in images])
    assert np.all(gaps >= 0.05 - 1e-9)  # never faster than camera_rate in sim time
    assert statuses and statuses[-1].task == "reach"


def test_a_slow_renderer_slows_the_clock_and_drops_no_frame_as_in_gz_sim(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """gz-sim renders each camera at its rate in sim time and holds physics for it: a frame shows its
    stamp's state, at most one tick goes by before it is out, and a slow CPU slows /clock instead. Without
    ``camera_lockstep`` the same renderer drops frames and delivers them late (the Sawyer's 80 Hz
    cameras came at 23 Hz, 47 ms late, on this 2-core machine)."""
    monkeypatch.setattr(server_module, "CLOCK_REPORT_S", 0.3)
    results = {}
    for lockstep in (True, False):
        frames: list[tuple[float, float, float]] = []  # (stamp, sim clock when out, sim time the frame shows)
        config = SimConfig(
            task="reach", camera_rate=50.0, camera_width=32, camera_height=24, camera_lockstep=lockstep
        )  # fmt: skip
        sim = SimServer(config, watched=lambda: ["wrist"])

        def slow_out(now: float, images: dict, sim: SimServer = sim, frames: list = frames) -> None:
            time.sleep(0.04)  # a renderer at 25 frames a wall second, for a camera at 50 Hz of sim time
            frames.append((now, sim.now(), float(sim._snapshots._snapshot.time) + sim._offset))

        sim.on_images = slow_out
        sim.start()
        try:
            wall = time.monotonic()
            wait_until(lambda frames=frames: len(frames) >= 15, timeout=60, what="15 frames")
            wall, clock = time.monotonic() - wall, sim.now()
        finally:
            sim.stop()
        stamps, out, shown = (np.array(column) for column in zip(*frames[2:], strict=True))
        results[lockstep] = (np.diff(stamps), out - stamps, clock, wall)
        np.testing.assert_allclose(shown, stamps, atol=1e-9)  # each frame shows the state of its stamp
    gaps, lag, clock, wall = results[True]
    np.testing.assert_allclose(gaps, 0.02, atol=1e-9)  # every frame, on schedule
    # one tick at most: 200 Hz on a 2 ms timestep is 2 or 3 steps a tick
    assert lag.max() <= 0.006 + 1e-9, f"the clock went {lag.max():.3f} s past a frame before it was out"
    assert clock / wall < 0.8, f"/clock ran at {clock / wall:.2f}x wall time with the renderer at half speed"
    assert "physics waited for the camera renderer" in caplog.text  # the user is told why the clock is slow
    gaps, lag, _, _ = results[False]
    assert gaps.max() > 0.02 + 1e-9 and lag.max() > 0.005, "without lockstep the renderer falls behind"


def test_each_camera_renders_at_its_own_rate_unless_the_node_sets_one() -> None:
    """The Sawyer's cameras were recorded at 80 Hz, the arms' at 30: the default renders each camera
    at its embodiment's rate_hz, camera_rate > 0 overrides all of them (on schedule in sim time)."""
    env = SimServer(SimConfig(task="reach", cameras=False)).env
    scene, wrist = env.embodiment.cameras
    cameras = [replace(scene, rate_hz=30.0), replace(wrist, rate_hz=80.0)]
    for rate_hz, expected in ((0.0, {scene.name: 30, wrist.name: 80}), (20.0, {scene.name: 20, wrist.name: 20})):
        snapshots, counts = SnapshotRenderer(rate_hz, (32, 24)), Counter()
        for tick in range(400):  # one sim second at 400 Hz
            due = snapshots.due(tick / 400, cameras)
            if due:
                snapshots.capture(env, tick / 400, due)
                counts.update(cam.name for cam in due)
        frames = snapshots.render(cameras)
        snapshots.close()
        assert dict(counts) == expected
        assert {name: image.shape for name, image in frames.items()} == {c.name: (24, 32, 3) for c in cameras}
