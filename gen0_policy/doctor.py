"""``gen0 doctor``: checks that this machine can run the suite and says how to fix what is wrong."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass

SETUP_HINT = "run ./setup.sh from the gen0-ros checkout (or source your ROS 2 Jazzy workspace)"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _check_python() -> Check:
    ok = sys.version_info >= (3, 10)
    return Check("python", ok, sys.version.split()[0], "" if ok else "use Python 3.10 or newer (3.11 tested)")


def _check_discovery_range() -> Check:
    value = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "")
    ok = value == "LOCALHOST"
    return Check(
        "discovery range",
        ok,
        f"ROS_AUTOMATIC_DISCOVERY_RANGE={value or '(unset)'}",
        "" if ok else "export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (unless this robot spans several machines)",
    )


def _check_rclpy() -> Check:
    # The probe node needs no peers: keep it on localhost whatever the user's range is.
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    try:
        import rclpy
        from rclpy.utilities import get_rmw_implementation_identifier

        context = rclpy.Context()
        rclpy.init(context=context)
        try:
            node = rclpy.create_node("gen0_doctor", context=context)
            node.destroy_node()
        finally:
            rclpy.shutdown(context=context)
        return Check("rclpy", True, f"middleware {get_rmw_implementation_identifier()}")
    except Exception as exc:  # any failure here is the finding
        return Check(
            "rclpy", False, f"{type(exc).__name__}: {exc}", f"{SETUP_HINT}; pip needs ros-jazzy-rclpy[fastrtps]"
        )


def _check_import(module: str, attr: str, fix: str) -> Callable[[], Check]:
    def check() -> Check:
        try:
            mod = importlib.import_module(module)
            getattr(mod, attr)
            version = getattr(importlib.import_module(module.split(".")[0]), "__version__", "")
            return Check(module.split(".")[0], True, f"{module}.{attr} {version}".strip())
        except Exception as exc:
            return Check(module.split(".")[0], False, f"{type(exc).__name__}: {exc}", fix)

    return check


def _check_torch() -> Check:
    try:
        import torch

        cuda = torch.cuda.is_available()
        return Check("torch", True, f"{torch.__version__}, {'CUDA' if cuda else 'CPU only'}")
    except Exception as exc:
        return Check("torch", False, f"{type(exc).__name__}: {exc}", "pip install torch==2.13.0 (before anything else)")


def _check_mujoco_rendering() -> Check:
    import gen0_policy.sim  # noqa: F401 - picks the GL backend the simulator will use (offscreen without a display)

    backend = os.environ.get("MUJOCO_GL", "")
    try:
        import mujoco
        import numpy as np

        model = mujoco.MjModel.from_xml_string(
            "<mujoco><worldbody><light pos='0 0 2'/><geom type='box' size='.1 .1 .1' rgba='1 0 0 1'/>"
            "<camera name='c' pos='0 -1 0' xyaxes='1 0 0 0 0 1'/></worldbody></mujoco>"
        )
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        with mujoco.Renderer(model, 32, 32) as renderer:
            renderer.update_scene(data, camera="c")
            frame = renderer.render()
        if not np.any(frame):
            raise RuntimeError("rendered an all-black frame")
        return Check("mujoco rendering", True, f"mujoco {mujoco.__version__}, MUJOCO_GL={backend or '(unset)'}")
    except Exception as exc:
        return Check(
            "mujoco rendering",
            False,
            f"{type(exc).__name__}: {exc} (MUJOCO_GL={backend or '(unset)'})",
            "export MUJOCO_GL=egl (apt install libegl1 libgl1-mesa-dri) or MUJOCO_GL=osmesa (apt install libosmesa6)",
        )


def _check_config() -> Check:
    try:
        from gen0_policy.paths import config_dir

        return Check("config", True, str(config_dir()))
    except Exception as exc:
        return Check("config", False, str(exc), "reinstall gen0_policy (pip install -e . or colcon build)")


CHECKS: list[Callable[[], Check]] = [
    _check_python,
    _check_discovery_range,
    _check_rclpy,
    _check_import("gen0_msgs.msg", "PolicyStatus", f"build gen0_msgs: {SETUP_HINT}"),
    _check_torch,
    _check_mujoco_rendering,
    _check_config,
]


def run_checks() -> list[Check]:
    user_range = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE")
    try:
        return [check() for check in CHECKS]
    finally:
        if user_range is None:
            os.environ.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)
        else:
            os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = user_range


def _run(args: argparse.Namespace) -> int:
    results = run_checks()
    failed = [r for r in results if not r.ok]
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        for r in results:
            if args.quiet and r.ok:
                continue
            print(f"{'ok ' if r.ok else 'BAD'}  {r.name:<17} {r.detail}")
            if r.fix:
                print(f"     fix: {r.fix}")
    return 1 if failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("doctor", help="check this machine's ROS 2, torch and MuJoCo set-up")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.add_argument("--quiet", action="store_true", help="print only failed checks")
    parser.set_defaults(func=_run)
