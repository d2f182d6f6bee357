"""Write config/urdf/<embodiment>.urdf.xacro from the MuJoCo robot that gen0_policy.sim builds, so
Gazebo / hardware bringups and the MuJoCo simulator share one kinematic model.

Links are the MuJoCo bodies (same frames), joints the MuJoCo joints (same names, axes; limits of
action joints from the embodiment YAML), inertials the compiled masses and inertias; meshes become
simple boxes/cylinders/spheres (no mesh files in the repo). Joints that only follow an action joint
(the other finger) become URDF <mimic> joints. Body-mounted cameras get ``<camera>_optical_frame``
links (z forward, x right, y down), the frame ids gen0_sim_node stamps its images with.

Usage: python tools/mjcf_to_xacro.py [EMBODIMENT ...]    (default: ur5e panda g1)
test/test_description_urdf.py checks the result against the MuJoCo model (names, limits, forward
kinematics), so a model change without regenerating fails there.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from gen0_policy.embodiment import Embodiment, load_embodiment
from gen0_policy.paths import config_dir
from gen0_policy.sim.scene import build_spec

# Joints coupled to an action joint by a closed linkage (MuJoCo `connect` constraints), which URDF
# cannot express: approximated as mimic joints, (mimicked joint, multiplier), as robotiq_description does.
LINKAGE_MIMIC = {
    "ur5e": {
        "robotiq_left_driver_joint": ("robotiq_right_driver_joint", 1.0),
        "robotiq_left_spring_link_joint": ("robotiq_right_driver_joint", 1.0),
        "robotiq_right_spring_link_joint": ("robotiq_right_driver_joint", 1.0),
        "robotiq_left_follower": ("robotiq_right_driver_joint", -1.0),
        "robotiq_right_follower_joint": ("robotiq_right_driver_joint", -1.0),
    }
}
GEOM = mujoco.mjtGeom


def fmt(values) -> str:
    return " ".join(f"{0.0 if abs(v) < 1e-12 else float(v):.9g}" for v in np.ravel(values))


def rpy(quat_wxyz) -> str:
    w, x, y, z = quat_wxyz
    with warnings.catch_warnings():  # gimbal lock: the angles are still a valid representation
        warnings.simplefilter("ignore", UserWarning)
        return fmt(Rotation.from_quat([x, y, z, w]).as_euler("xyz"))


def origin(pos, quat) -> str:
    return f'<origin xyz="{fmt(pos)}" rpy="{rpy(quat)}"/>'


def camera_frame(m: mujoco.MjModel, c: int) -> list[str]:
    """Link + fixed joint of a camera's optical frame (z forward, x right, y down): the MuJoCo camera
    (looking along -z, y up) turned 180 deg about x."""
    cam, quat = m.camera(c).name, np.zeros(4)
    mujoco.mju_mulQuat(quat, m.cam_quat[c], np.array([0.0, 1.0, 0.0, 0.0]))
    parent = "world" if m.cam_bodyid[c] == 0 else f"${{prefix}}{m.body(m.cam_bodyid[c]).name}"
    return [
        f'  <link name="${{prefix}}{cam}_optical_frame"/>',
        f'  <joint name="${{prefix}}{cam}_optical_joint" type="fixed"><parent link="{parent}"/>'
        f'<child link="${{prefix}}{cam}_optical_frame"/>{origin(m.cam_pos[c], quat)}</joint>',
    ]


def mimic_table(m: mujoco.MjModel, emb: Embodiment) -> dict[str, tuple[str, float, float]]:
    """Non-action joint -> (action joint, multiplier, offset), from joint equalities and LINKAGE_MIMIC."""
    action = set(emb.joint_names)
    table: dict[str, tuple[str, float, float]] = {}
    for eq in range(m.neq):
        if m.eq_type[eq] != mujoco.mjtEq.mjEQ_JOINT:
            continue
        a, b = m.joint(int(m.eq_obj1id[eq])).name, m.joint(int(m.eq_obj2id[eq])).name
        c0, c1 = float(m.eq_data[eq, 0]), float(m.eq_data[eq, 1])  # q_a = c0 + c1 * q_b
        if a in action and b not in action:
            table[b] = (a, 1.0 / c1, -c0 / c1)
        elif b in action and a not in action:
            table[a] = (b, c1, c0)
    for joint, (leader, multiplier) in LINKAGE_MIMIC.get(emb.name, {}).items():
        table.setdefault(joint, (leader, multiplier, 0.0))
    return table


def shape(m: mujoco.MjModel, g: int) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(URDF geometry, pos, quat) of a geom in its body's frame; meshes become their bounding box."""
    size, pos, quat = m.geom_size[g], m.geom_pos[g].copy(), m.geom_quat[g].copy()
    kind = m.geom_type[g]
    if kind == GEOM.mjGEOM_SPHERE:
        return f'<sphere radius="{fmt([size[0]])}"/>', pos, quat
    if kind in (GEOM.mjGEOM_CAPSULE, GEOM.mjGEOM_CYLINDER):
        length = 2 * size[1] + (2 * size[0] if kind == GEOM.mjGEOM_CAPSULE else 0.0)
        return f'<cylinder radius="{fmt([size[0]])}" length="{fmt([length])}"/>', pos, quat
    if kind == GEOM.mjGEOM_BOX:
        return f'<box size="{fmt(2 * size[:3])}"/>', pos, quat
    return None


def mesh_box(m: mujoco.MjModel, geoms: list[int]) -> tuple[str, np.ndarray, np.ndarray] | None:
    """One axis-aligned box (in the body frame) around a body's visual meshes."""
    corners = []
    for g in geoms:
        center, half = m.geom_aabb[g, :3], m.geom_aabb[g, 3:]
        rot = np.zeros(9)
        mujoco.mju_quat2Mat(rot, m.geom_quat[g])
        signs = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T
        local = center + signs * half
        corners.append(m.geom_pos[g] + local @ rot.reshape(3, 3).T)
    if not corners:
        return None
    points = np.concatenate(corners)
    lo, hi = points.min(axis=0), points.max(axis=0)
    return f'<box size="{fmt(hi - lo)}"/>', (lo + hi) / 2, np.array([1.0, 0.0, 0.0, 0.0])


def generate(name: str) -> str:
    emb = load_embodiment(name)
    m = build_spec(emb).compile()  # the robot in its world (base pose, scene cameras)
    root = m.body(emb.sim["base_body"]).id
    mimic = mimic_table(m, emb)
    spec_of = {j.name: j for j in emb.joints}
    cameras = [m.camera(cam.name).id for cam in emb.cameras]  # not the model's own extra cameras
    out = [
        '<?xml version="1.0"?>',
        f"<!-- {emb.description}.",
        "     GENERATED by tools/mjcf_to_xacro.py from the MuJoCo model gen0_policy.sim builds from",
        f"     config/embodiments/{name}.yaml: same link frames, joint names, axes and limits, and inertias;",
        "     simple shapes instead of meshes. Regenerate after changing the model (test_description_urdf.py",
        "     checks names, limits and forward kinematics against MuJoCo).",
        "     xacro args: prefix (for link/joint names), ros2_control_plugin (gz_ros2_control/GazeboSimSystem",
        "     for Gazebo, mock_components/GenericSystem for a mock robot), controllers_file (the",
        "     config/controllers/*.yaml that gz_ros2_control loads; empty = no Gazebo plugin), fixed_to_world. -->",
        f'<robot name="{name}" xmlns:xacro="http://www.ros.org/wiki/xacro">',
        '  <xacro:arg name="prefix" default=""/>',
        '  <xacro:arg name="ros2_control_plugin" default="gz_ros2_control/GazeboSimSystem"/>',
        '  <xacro:arg name="controllers_file" default=""/>',
        '  <xacro:arg name="fixed_to_world" default="true"/>',
        '  <xacro:property name="prefix" value="$(arg prefix)"/>',
        "",
        '  <xacro:if value="$(arg fixed_to_world)">',
        '    <link name="world"/>',
        f'    <joint name="${{prefix}}world_joint" type="fixed"><parent link="world"/>'
        f'<child link="${{prefix}}{m.body(root).name}"/>{origin(m.body_pos[root], m.body_quat[root])}</joint>',
        *[f"  {line}" for c in cameras if m.cam_bodyid[c] == 0 for line in camera_frame(m, c)],
        "  </xacro:if>",
    ]
    colors: dict[str, str] = {}
    bodies = [b for b in range(m.nbody) if b == root or _descends(m, b, root)]
    for b in bodies:
        link = m.body(b).name
        out.append(f'  <link name="${{prefix}}{link}">')
        if m.body_mass[b] > 0:
            inertia = m.body_inertia[b]
            out += [
                "    <inertial>",
                f"      {origin(m.body_ipos[b], m.body_iquat[b])}",
                f'      <mass value="{fmt([m.body_mass[b]])}"/>',
                f'      <inertia ixx="{fmt([inertia[0]])}" ixy="0" ixz="0" iyy="{fmt([inertia[1]])}" iyz="0" '
                f'izz="{fmt([inertia[2]])}"/>',
                "    </inertial>",
            ]
        visual = [g for g in range(m.ngeom) if m.geom_bodyid[g] == b and m.geom_group[g] < 3]  # 3: collision
        meshes = [g for g in visual if m.geom_type[g] == GEOM.mjGEOM_MESH]
        shapes = [(g, shape(m, g)) for g in visual if g not in meshes]
        if meshes:
            shapes.append((meshes[0], mesh_box(m, meshes)))
        for g, geometry in shapes:
            if geometry is None:
                continue
            geom_xml, pos, quat = geometry
            rgba = m.mat_rgba[m.geom_matid[g]] if m.geom_matid[g] >= 0 else m.geom_rgba[g]
            color = colors.setdefault(fmt(rgba), f"color{len(colors)}")
            for tag in ("visual", "collision"):
                material = f'<material name="{color}"><color rgba="{fmt(rgba)}"/></material>' if tag == "visual" else ""
                out.append(f"    <{tag}>{origin(pos, quat)}<geometry>{geom_xml}</geometry>{material}</{tag}>")
        out.append("  </link>")
        if b == root:
            continue
        parent = m.body(m.body_parentid[b]).name
        joints = [j for j in range(m.njnt) if m.jnt_bodyid[j] == b]
        if len(joints) > 1:
            raise SystemExit(f"body {link} has {len(joints)} joints; URDF allows one")
        head = f'<parent link="${{prefix}}{parent}"/><child link="${{prefix}}{link}"/>'
        if not joints:
            out.append(
                f'  <joint name="${{prefix}}{parent}_to_{link}" type="fixed">{head}'
                f"{origin(m.body_pos[b], m.body_quat[b])}</joint>"
            )
            continue
        j = joints[0]
        jname = m.joint(j).name
        if np.abs(m.jnt_pos[j]).max() > 0:
            raise SystemExit(f"joint {jname} is offset from its body frame; not supported")
        kind = {mujoco.mjtJoint.mjJNT_HINGE: "revolute", mujoco.mjtJoint.mjJNT_SLIDE: "prismatic"}[m.jnt_type[j]]
        if jname in spec_of:
            s = spec_of[jname]
            lower, upper, effort, velocity = s.lower, s.upper, s.effort, s.velocity
        elif jname in mimic:
            s = spec_of[mimic[jname][0]]
            (lower, upper), effort, velocity = m.jnt_range[j], s.effort, s.velocity
        else:
            raise SystemExit(f"joint {jname} is neither an action joint nor coupled to one; add it to LINKAGE_MIMIC")
        out.append(f'  <joint name="${{prefix}}{jname}" type="{kind}">')
        out.append(f"    {head}{origin(m.body_pos[b], m.body_quat[b])}")
        out.append(f'    <axis xyz="{fmt(m.jnt_axis[j])}"/>')
        out.append(
            f'    <limit lower="{lower:.6g}" upper="{upper:.6g}" effort="{effort:.6g}" velocity="{velocity:.6g}"/>'
        )
        if jname in mimic:
            leader, multiplier, offset = mimic[jname]
            out.append(
                f'    <mimic joint="${{prefix}}{leader}" multiplier="{fmt([multiplier])}" offset="{fmt([offset])}"/>'
            )
        out.append("  </joint>")

    # Frames that nodes refer to: TCP sites and body-mounted cameras (ROS optical convention).
    for s in range(m.nsite):
        if m.site(s).name in emb.sim.get("tcp_sites", []):
            parent = m.body(m.site_bodyid[s]).name
            out.append(f'  <link name="${{prefix}}{m.site(s).name}"/>')
            out.append(
                f'  <joint name="${{prefix}}{m.site(s).name}_joint" type="fixed"><parent link="${{prefix}}{parent}"/>'
                f'<child link="${{prefix}}{m.site(s).name}"/>{origin(m.site_pos[s], m.site_quat[s])}</joint>'
            )
    for c in cameras:
        if m.cam_bodyid[c] != 0:  # world cameras are above, with the world link
            out += camera_frame(m, c)

    # ros2_control: position commands for the action joints; mimic joints report state only.
    out += [
        "",
        f'  <ros2_control name="{name}_system" type="system">',
        "    <hardware><plugin>$(arg ros2_control_plugin)</plugin></hardware>",
    ]
    for s in emb.joints:
        out += [
            f'    <joint name="${{prefix}}{s.name}">',
            '      <command_interface name="position"/>',
            '      <state_interface name="position">'
            f'<param name="initial_value">{s.home:.6g}</param></state_interface>',
            '      <state_interface name="velocity"/>',
            "    </joint>",
        ]
    for jname in sorted(mimic):
        out.append(
            f'    <joint name="${{prefix}}{jname}"><state_interface name="position"/>'
            '<state_interface name="velocity"/></joint>'
        )
    out += [
        "  </ros2_control>",
        "",
        "  <xacro:if value=\"${'$(arg controllers_file)' != ''}\">",
        "    <gazebo>",
        '      <plugin filename="gz_ros2_control-system" name="gz_ros2_control::GazeboSimROS2ControlPlugin">',
        "        <parameters>$(arg controllers_file)</parameters>",
        "      </plugin>",
        "    </gazebo>",
        "  </xacro:if>",
        "</robot>",
        "",
    ]
    return "\n".join(out)


def _descends(m: mujoco.MjModel, b: int, root: int) -> bool:
    while b > 0:
        b = int(m.body_parentid[b])
        if b == root:
            return True
    return False


def main(names: list[str]) -> None:
    folder = config_dir() / "urdf"
    folder.mkdir(exist_ok=True)
    for name in names or ["ur5e", "panda", "g1"]:
        path = Path(folder) / f"{name}.urdf.xacro"
        path.write_text(generate(name))
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
