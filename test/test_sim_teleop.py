"""The scripted expert as a teleoperator: it decides once per control period, its targets split into
one command per controller covering every joint once, and executed through the controllers (the
path a teleop's messages take in the sim node) they still solve the task, also after a reset."""

from __future__ import annotations

import numpy as np

from gen0_policy.commands import TrajectoryCommand
from gen0_policy.sim import make_env
from gen0_policy.sim.controllers import ControllerSet
from gen0_policy.sim.teleop import ExpertTeleop


def _run(env, teleop: ExpertTeleop, seconds: float, tick: float) -> tuple[int, bool]:
    """Drive env through a ControllerSet with teleop's commands; returns (command rounds, success)."""
    controllers = ControllerSet(env.embodiment)
    controllers.reset(env.joint_positions(), env.time)
    rounds = 0
    while env.time < seconds and not env.success():
        commands = teleop.step()
        rounds += bool(commands)
        for c in commands:
            if c.trajectory:
                cmd = TrajectoryCommand(c.joints, np.array([c.horizon]), c.positions[None, :])
                controllers.command_trajectory(c.controller, cmd, env.time)
            else:
                controllers.command_positions(c.controller, c.positions, env.time)
        env.set_targets(controllers.targets(env.time))
        env.step(duration=tick)
    return rounds, env.success()


def test_commands_cover_every_joint_once_at_the_control_rate():
    env = make_env("panda", "pick_place", seed=3)
    teleop = ExpertTeleop(env)
    emb = env.embodiment
    first = teleop.step()
    assert [c.controller for c in first] == [c.name for c in emb.controllers]
    assert sorted(j for c in first for j in c.joints) == sorted(emb.joint_names)
    assert [c.trajectory for c in first] == [c.type == "joint_trajectory_controller" for c in emb.controllers]
    for c in first:
        assert c.positions.shape == (len(c.joints),) and np.isfinite(c.positions).all()
        assert c.horizon == env.control_dt
    # physics ticks of one MuJoCo step (a fifth of the 100 Hz control period): a decision every fifth tick
    steps = round(env.control_dt / env.model.opt.timestep)
    decided = []
    for _ in range(4 * steps):
        env.step(duration=float(env.model.opt.timestep))
        decided.append(bool(teleop.step()))
    assert decided == ([False] * (steps - 1) + [True]) * 4, decided
    env.close()


def test_expert_through_the_controllers_solves_reach_and_replans_after_reset():
    env = make_env("panda", "reach", seed=5)
    teleop = ExpertTeleop(env)
    tick = 0.004  # what the sim node's default 200 Hz becomes in whole 2 ms MuJoCo steps
    rounds, success = _run(env, teleop, seconds=env.task.max_duration, tick=tick)
    assert success, f"reach not solved in {env.time:.2f} s through the controllers"
    assert abs(rounds - env.time / env.control_dt) <= 2, (rounds, env.time)
    env.reset(seed=6)
    teleop.reset()
    assert not env.success()
    _, success = _run(env, teleop, seconds=env.task.max_duration, tick=tick)
    assert success, "reach not solved after reset: the expert did not re-plan"
    env.close()
