"""Differential inverse kinematics on MuJoCo Jacobians (damped least squares with a posture term).

Experts call it once per control step from the previous solution, so a few iterations suffice; it
runs on its own ``MjData`` and never touches the simulation it plans for.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from gen0_policy.embodiment import Embodiment
from gen0_policy.errors import ConfigError


@dataclass(frozen=True)
class IKConfig:
    damping: float = 0.05  # DLS damping (m); larger = smoother near singularities, less exact
    rotation_weight: float = 0.5  # m per rad: how much an orientation error counts against a position one
    posture_gain: float = 0.05  # pull towards the posture in the Jacobian's null space, per iteration
    max_step: float = 0.2  # rad per iteration
    iterations: int = 4  # per solve; experts warm-start from the previous step, so few are needed

    def __post_init__(self) -> None:
        if self.damping <= 0 or self.rotation_weight < 0 or self.max_step <= 0 or self.iterations < 1:
            raise ConfigError("IKConfig: damping, max_step and iterations must be > 0, rotation_weight >= 0")


class DifferentialIK:
    """Moves ``joints`` (a subset of the embodiment's) so that ``site`` reaches a pose."""

    def __init__(
        self,
        model: mujoco.MjModel,
        embodiment: Embodiment,
        site: str,
        joints: list[str],
        config: IKConfig | None = None,
    ) -> None:
        self.model = model
        self.data = mujoco.MjData(model)
        self.config = config or IKConfig()
        self.site = model.site(site).id
        self.index = embodiment.joint_indices(joints)  # positions in the embodiment's vector
        self.qadr = np.array([model.joint(n).qposadr[0] for n in embodiment.joint_names])
        self.dofs = np.array([model.joint(n).dofadr[0] for n in joints])
        self.lower = embodiment.lower[self.index]
        self.upper = embodiment.upper[self.index]
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Site position (3,) and rotation matrix (3, 3) at joint vector ``q`` (embodiment order)."""
        self.data.qpos[self.qadr] = q
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3).copy()

    def solve(
        self,
        q: np.ndarray,
        position: np.ndarray,
        rotation: np.ndarray | None = None,
        posture: np.ndarray | None = None,
        iterations: int | None = None,
    ) -> np.ndarray:
        """Joint vector near ``q`` putting the site at ``position`` (and ``rotation``, a 3x3 matrix)."""
        cfg = self.config
        q = np.asarray(q, dtype=np.float64).copy()
        posture = q.copy() if posture is None else posture
        target_quat = np.zeros(4)
        if rotation is not None:
            mujoco.mju_mat2Quat(target_quat, np.ascontiguousarray(rotation).reshape(-1))
        quat, inv, diff, rotvel = np.zeros(4), np.zeros(4), np.zeros(4), np.zeros(3)
        for _ in range(iterations or cfg.iterations):
            pos, mat = self.forward(q)
            mujoco.mj_comPos(self.model, self.data)
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self.site)
            err = [position - pos]
            jac = [self._jacp[:, self.dofs]]
            if rotation is not None:
                mujoco.mju_mat2Quat(quat, mat.reshape(-1))
                mujoco.mju_negQuat(inv, quat)
                mujoco.mju_mulQuat(diff, target_quat, inv)
                mujoco.mju_quat2Vel(rotvel, diff, 1.0)
                err.append(cfg.rotation_weight * rotvel)
                jac.append(cfg.rotation_weight * self._jacr[:, self.dofs])
            e, j = np.concatenate(err), np.concatenate(jac)
            jjt = j @ j.T + cfg.damping**2 * np.eye(len(e))
            dq = j.T @ np.linalg.solve(jjt, e)
            # Null-space pull towards the posture keeps redundant arms (Panda, G1) away from odd elbows.
            pinv = j.T @ np.linalg.solve(jjt, np.eye(len(e)))
            dq += (np.eye(len(dq)) - pinv @ j) @ (cfg.posture_gain * (posture[self.index] - q[self.index]))
            dq = np.clip(dq, -cfg.max_step, cfg.max_step)
            q[self.index] = np.clip(q[self.index] + dq, self.lower, self.upper)
        return q
