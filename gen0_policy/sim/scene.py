"""A tabletop world around one robot: floor, table, light, scene camera; the task adds its objects.

The table top is the plane z = 0 in every world, so tasks place objects without knowing the robot.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from gen0_policy.embodiment import Embodiment
from gen0_policy.sim.robots import build_robot, look_at

TIMESTEP = 0.002  # s; 5 physics steps per 100 Hz control step
TABLE_THICKNESS = 0.04  # m
FLOOR_Z = -0.75  # m, below the table top


@dataclass(frozen=True)
class Layout:
    """Where a task may put things for this robot (table frame: top at z = 0), from ``sim:``."""

    center: np.ndarray  # (2,) workspace centre on the table, m
    half: np.ndarray  # (2,) half extents of the region objects are sampled in, m
    hover: float  # m above the table where a hand moves between objects
    tcp_sites: tuple[str, ...]  # tool centre point sites, one per hand (G1: left, right)
    two_handed: bool

    @classmethod
    def from_embodiment(cls, embodiment: Embodiment) -> Layout:
        ws = embodiment.sim["workspace"]
        tcps = tuple(embodiment.sim["tcp_sites"])
        return cls(
            center=np.asarray(ws["center"], float),
            half=np.asarray(ws["half"], float),
            hover=float(ws.get("hover", 0.15)),
            tcp_sites=tcps,
            two_handed=len(tcps) == 2,
        )


def _add_assets(spec: mujoco.MjSpec) -> None:
    spec.add_texture(
        name="sky", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX, builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
        rgb1=[0.55, 0.65, 0.8], rgb2=[0.1, 0.12, 0.15], width=64, height=64,
    )  # fmt: skip
    spec.add_texture(
        name="floor", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
        rgb1=[0.25, 0.27, 0.3], rgb2=[0.32, 0.34, 0.37], width=256, height=256,
    )  # fmt: skip
    floor = spec.add_material(name="floor", texrepeat=[6, 6], reflectance=0.0)
    floor.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "floor"
    spec.add_material(name="table", rgba=[0.62, 0.47, 0.33, 1.0])
    spec.add_material(name="table_leg", rgba=[0.3, 0.3, 0.32, 1.0])


def _add_table(spec: mujoco.MjSpec, embodiment: Embodiment) -> None:
    table = embodiment.sim["table"]
    cx, cy = table["center"]
    hx, hy = table["size"]
    body = spec.worldbody.add_body(name="table", pos=[cx, cy, -TABLE_THICKNESS / 2])
    body.add_geom(
        name="table_top", type=mujoco.mjtGeom.mjGEOM_BOX, size=[hx, hy, TABLE_THICKNESS / 2], material="table",
        friction=[1.0, 0.005, 0.0001],
    )  # fmt: skip
    leg_h = (-FLOOR_Z - TABLE_THICKNESS) / 2
    for sx in (-1, 1):
        for sy in (-1, 1):
            body.add_geom(
                type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.03, 0.03, leg_h], material="table_leg",
                pos=[sx * (hx - 0.05), sy * (hy - 0.05), -TABLE_THICKNESS / 2 - leg_h], contype=0, conaffinity=0,
            )  # fmt: skip


def build_spec(embodiment: Embodiment) -> mujoco.MjSpec:
    """Robot + floor + table + light + scene camera; tasks add their objects to the returned spec."""
    spec = build_robot(embodiment)
    spec.option.timestep = TIMESTEP
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST  # attaching resets it: set it here
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0  # stiff friction: grasped objects do not slip
    spec.visual.quality.shadowsize = 0  # shadows and multisampling cost 10x on CPU renderers
    spec.visual.quality.offsamples = 0
    spec.visual.global_.offwidth = 1280
    spec.visual.global_.offheight = 960
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.5, 0.5, 0.5]
    _add_assets(spec)
    spec.worldbody.add_geom(
        name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 0.05], pos=[0, 0, FLOOR_Z], material="floor"
    )
    spec.worldbody.add_light(name="sun", pos=[0.3, -0.3, 2.5], dir=[0, 0.1, -1], directional=True, castshadow=False)
    _add_table(spec, embodiment)
    # The first links sit on or near the table top; their contacts there would only add friction.
    base = spec.body(embodiment.sim["base_body"])
    for body in [base, *base.bodies]:
        spec.add_exclude(bodyname1="table", bodyname2=body.name)
    for cam in embodiment.cameras:
        mount = embodiment.sim.get("cameras", {}).get(cam.name, {})
        if mount.get("body", "world") == "world":
            pos = np.asarray(mount.get("pos", [1.2, -0.6, 0.8]), float)
            target = np.asarray(mount.get("target", [0.4, 0.0, 0.0]), float)
            spec.worldbody.add_camera(name=cam.name, pos=pos, quat=look_at(pos, target), fovy=cam.fovy)
    return spec
