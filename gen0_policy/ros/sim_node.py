"""gen0_sim_node: the MuJoCo simulator with the ROS 2 face of a ros2_control robot.

Publishes /joint_states, /clock, /<camera>/image_raw + camera_info and /task_status; obeys
/<controller>/joint_trajectory (joint_trajectory_controller) and /<controller>/commands
(forward position controllers) with the semantics of gen0_policy.sim.controllers; resets via
~/reset. With ``expert_teleop`` the task's scripted expert stands in for a person: its targets are
published on those same command topics (as a teleop would send them) and executed from there.
Physics runs in its own thread paced by ``real_time_factor``; the executor thread only receives
commands and services, so neither waits for the other longer than one physics tick.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from gen0_msgs.msg import TaskStatus
from gen0_msgs.srv import ResetTask
from gen0_policy.errors import CommandError, Gen0Error
from gen0_policy.ros import conversions as conv
from gen0_policy.ros.qos import REQUESTS
from gen0_policy.ros.spin import spin

if TYPE_CHECKING:
    from gen0_policy.sim.teleop import ControllerCommand, ExpertTeleop

# A start time this far ahead of the sim clock is almost surely a wall-clock stamp from a node
# that does not run with use_sim_time; executing it would mean waiting for decades.
MAX_START_AHEAD = 3600.0  # s


class SimNode(Node):
    def __init__(self) -> None:
        super().__init__("gen0_sim")
        from gen0_policy.sim import available_tasks, make_env  # heavy (mujoco): only when the node starts

        self._make_env = make_env
        p = {
            name: self.declare_parameter(name, default).value
            for name, default in [
                ("embodiment", "panda"),  # config/embodiments/<name>.yaml
                ("task", ""),  # task name; "" = the first available task
                ("seed", 0),  # seed of the first episode
                ("update_rate", 200.0),  # Hz: controllers, physics ticks, /joint_states and /clock
                ("camera_rate", 30.0),  # Hz per camera; 0 disables cameras
                ("camera_width", 0),  # px; 0 = the embodiment's camera size
                ("camera_height", 0),  # px; 0 = the embodiment's camera size
                ("status_rate", 10.0),  # Hz of /task_status
                ("real_time_factor", 1.0),  # sim seconds per wall second; 0 = as fast as possible
                ("allow_partial_joints_goal", False),
                ("allow_nonzero_velocity_at_trajectory_end", False),
                ("allow_trajectory_replacement", True),
                ("expert_teleop", False),  # the scripted expert publishes commands on the controller topics
            ]
        }
        if p["update_rate"] <= 0 or p["real_time_factor"] < 0 or p["camera_rate"] < 0 or p["status_rate"] <= 0:
            raise Gen0Error("update_rate and status_rate must be > 0, camera_rate and real_time_factor >= 0")
        self.params = p
        self._available_tasks = available_tasks
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._episode = 0
        self._offset = 0.0  # sim clock = offset + env.time, kept monotonic across resets
        self.teleop: ExpertTeleop | None = None  # the scripted expert when expert_teleop is set
        self._build(p["task"] or available_tasks(p["embodiment"])[0], int(p["seed"]))

        self.joint_pub = self.create_publisher(JointState, "joint_states", 10)
        self.clock_pub = self.create_publisher(Clock, "/clock", 10)
        self.status_pub = self.create_publisher(TaskStatus, "task_status", 10)
        self.camera_pubs = {
            cam.name: (
                self.create_publisher(Image, f"{cam.name}/image_raw", qos_profile_sensor_data),
                self.create_publisher(CameraInfo, f"{cam.name}/camera_info", qos_profile_sensor_data),
            )
            for cam in self.env.embodiment.cameras
        }
        self.teleop_pubs = {}  # controller -> publisher of the expert's commands
        for spec in self.env.embodiment.controllers:
            if spec.type == "joint_trajectory_controller":
                topic, msg_type = f"{spec.name}/joint_trajectory", JointTrajectory
            else:
                topic, msg_type = f"{spec.name}/commands", Float64MultiArray
            self.create_subscription(msg_type, topic, lambda msg, n=spec.name, t=topic: self._on_command(n, t, msg), 10)
            if p["expert_teleop"]:
                self.teleop_pubs[spec.name] = self.create_publisher(msg_type, topic, 10)
        self.create_service(ResetTask, "~/reset", self._on_reset, qos_profile=REQUESTS)
        self._threads = [threading.Thread(target=self._run, name="physics", daemon=True)]
        if p["camera_rate"] > 0 and self.env.embodiment.cameras:
            self._threads.append(threading.Thread(target=self._render_loop, name="cameras", daemon=True))
        for thread in self._threads:
            thread.start()
        self.get_logger().info(
            f"simulating {self.env.embodiment.name} ({self.env.embodiment.dof} joints) on task {self.env.task_name}, "
            f"controllers {[c.name for c in self.env.embodiment.controllers]}, real_time_factor {p['real_time_factor']}"
            + (", the scripted expert publishing teleop commands" if p["expert_teleop"] else "")
        )

    # ------------------------------------------------------------ state (call with the lock held)

    def _build(self, task: str, seed: int) -> None:
        from gen0_policy.sim.controllers import ControllerSet

        now = self.now()  # before the env is replaced: the clock continues from here
        w, h = int(self.params["camera_width"]), int(self.params["camera_height"])
        self.env = self._make_env(self.params["embodiment"], task, seed=seed, camera_size=(w, h) if w and h else None)
        self.controllers = ControllerSet(
            self.env.embodiment,
            allow_partial_joints_goal=bool(self.params["allow_partial_joints_goal"]),
            allow_nonzero_velocity_at_trajectory_end=bool(self.params["allow_nonzero_velocity_at_trajectory_end"]),
            allow_trajectory_replacement=bool(self.params["allow_trajectory_replacement"]),
        )
        if self.params["expert_teleop"]:
            from gen0_policy.sim.teleop import ExpertTeleop

            self.teleop = ExpertTeleop(self.env)
        self._reset(seed, now)

    def _reset(self, seed: int, now: float | None = None) -> None:
        now = self.now() if now is None else now
        self.env.reset(seed=seed)
        self._offset = now - self.env.time
        self._seed, self._episode_start = seed, now
        self._episode += 1
        self.controllers.reset(self.env.joint_positions(), now)
        if self.teleop is not None:
            self.teleop.reset()

    def now(self) -> float:
        """Sim clock, s (what /clock says)."""
        return self._offset + self.env.time if hasattr(self, "env") else 0.0

    # ------------------------------------------------------------ executor thread

    def _on_command(self, controller: str, topic: str, msg: JointTrajectory | Float64MultiArray) -> None:
        try:
            with self._lock:
                now = self.now()
                if isinstance(msg, JointTrajectory):
                    cmd = conv.joint_trajectory_to_command(msg)
                    if cmd.start_time - now > MAX_START_AHEAD:
                        raise CommandError(
                            f"start time {cmd.start_time:.3f} s is {cmd.start_time - now:.0f} s after the sim clock "
                            f"({now:.3f} s); stamp with sim time (use_sim_time:=true) or send a zero stamp"
                        )
                    self.controllers.command_trajectory(controller, cmd, now)
                else:
                    self.controllers.command_positions(controller, conv.float64_multi_array_to_array(msg), now)
        except CommandError as exc:
            self.get_logger().error(f"rejected command on {self.resolve_topic_name(topic)}: {exc}")

    def _on_reset(self, request: ResetTask.Request, response: ResetTask.Response) -> ResetTask.Response:
        seed = int(request.seed) if request.seed >= 0 else self._seed + 1
        try:
            with self._lock:
                if request.task and request.task != self.env.task_name:
                    tasks = self._available_tasks(self.env.embodiment.name)
                    if request.task not in tasks:
                        raise Gen0Error(
                            f"unknown task {request.task!r} for {self.env.embodiment.name}; available tasks are {tasks}"
                        )
                    self._build(request.task, seed)
                else:
                    self._reset(seed)
                response.success, response.instruction, response.seed = True, self.env.instruction, seed
                response.message = f"reset {self.env.task_name} with seed {seed}"
        except Gen0Error as exc:
            response.success, response.message, response.seed = False, str(exc), seed
        self.get_logger().info(response.message)
        self._publish_status()
        return response

    # ------------------------------------------------------------ physics thread

    def _run(self) -> None:
        # One tick = the whole physics steps that reach the next multiple of 1 / update_rate: 200 Hz on a
        # 2 ms timestep alternates 2 and 3 steps (a fixed round(2.5) = 2 steps ran at 250 Hz).
        timestep = float(self.env.model.opt.timestep)
        period = 1.0 / float(self.params["update_rate"])
        next_tick = self.now() + period
        rtf = float(self.params["real_time_factor"])
        status_period = 1.0 / float(self.params["status_rate"])
        next_status = 0.0
        wall_start, sim_start = time.monotonic(), self.now()
        try:
            while not self._stop.is_set() and self.context.ok():
                with self._lock:
                    commands = self.teleop.step() if self.teleop is not None else []
                    self.env.set_targets(self.controllers.targets(self.now()))
                    steps = max(1, round((next_tick - self.now()) / timestep))
                    self.env.step(duration=steps * timestep)
                    now = self.now()
                    next_tick = max(next_tick + period, now + timestep / 2)  # a reset may move the clock on
                    self._publish_state(now)
                self._publish_teleop(commands)
                if now >= next_status:
                    next_status = max(next_status + status_period, now)
                    self._publish_status()
                if rtf > 0:
                    ahead = wall_start + (now - sim_start) / rtf - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
                    elif ahead < -0.5:  # fell behind (slow machine): do not try to catch up in a burst
                        wall_start, sim_start = time.monotonic(), now
                else:
                    time.sleep(0)  # let the executor thread take the GIL for commands
        except Exception as exc:  # a dead physics thread must not leave a silently frozen robot
            if self._stop.is_set() or not self.context.ok():
                return  # shutting down (Ctrl-C shuts the context down before spin returns)
            self.get_logger().fatal(f"physics loop stopped: {type(exc).__name__}: {exc}")
            raise

    def _publish_state(self, now: float) -> None:
        stamp = conv.to_time(now)
        self.clock_pub.publish(Clock(clock=stamp))
        names = self.env.embodiment.joint_names
        self.joint_pub.publish(
            conv.joint_state_msg(
                names, self.env.joint_positions(), self.env.joint_velocities(), self.env.joint_efforts(), stamp
            )
        )

    def _publish_teleop(self, commands: list[ControllerCommand]) -> None:
        """The expert's commands as a teleop sends them; our own subscriptions execute them."""
        for c in commands:
            if c.trajectory:  # one point, one control period ahead, stamp zero = on arrival
                msg = conv.joint_trajectory_msg(c.joints, [c.horizon], c.positions[None, :])
            else:
                msg = conv.float64_multi_array_msg(c.positions)
            self.teleop_pubs[c.controller].publish(msg)

    # ------------------------------------------------------------ camera thread

    def _render_loop(self) -> None:
        """Render snapshots of the physics state at camera_rate (sim time), outside the physics lock,
        so slow CPU rendering never slows the joint states down. GL contexts live in this thread."""
        import mujoco

        period = 1.0 / float(self.params["camera_rate"])
        w, h = int(self.params["camera_width"]), int(self.params["camera_height"])
        renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        model = snapshot = None
        last = -float("inf")
        try:
            while not self._stop.is_set() and self.context.ok():
                wanted = [
                    cam
                    for cam in self.env.embodiment.cameras
                    if any(pub.get_subscription_count() for pub in self.camera_pubs[cam.name])
                ]
                with self._lock:
                    now = self.now()
                    due = bool(wanted) and now >= last + period - 1e-9
                    if due:
                        if model is not self.env.model:  # a new task built a new model
                            for r in renderers.values():
                                r.close()
                            renderers.clear()
                            model, snapshot = self.env.model, mujoco.MjData(self.env.model)
                        data = self.env.data
                        snapshot.qpos[:], snapshot.qvel[:], snapshot.time = data.qpos, data.qvel, data.time
                        snapshot.mocap_pos[:], snapshot.mocap_quat[:] = data.mocap_pos, data.mocap_quat
                        sizes = {cam.name: (w, h) if w and h else (cam.width, cam.height) for cam in wanted}
                if not due:
                    time.sleep(0.002)
                    continue
                last = now if now - last > 2 * period else last + period
                mujoco.mj_forward(model, snapshot)  # positions of bodies and cameras, outside the lock
                stamp = conv.to_time(now)
                for cam in wanted:
                    w, h = sizes[cam.name]
                    if (w, h) not in renderers:
                        renderers[(w, h)] = mujoco.Renderer(model, height=h, width=w)
                    renderer = renderers[(w, h)]
                    renderer.update_scene(snapshot, camera=cam.name)
                    rgb = renderer.render()
                    frame = f"{cam.name}_optical_frame"
                    image_pub, info_pub = self.camera_pubs[cam.name]
                    image_pub.publish(conv.array_to_image(rgb, stamp, frame))
                    info_pub.publish(conv.camera_info(cam, w, h, stamp, frame))
        except Exception as exc:
            if self._stop.is_set() or not self.context.ok():
                return
            self.get_logger().fatal(f"camera loop stopped: {type(exc).__name__}: {exc}")
            raise
        finally:
            for r in renderers.values():
                r.close()

    def _publish_status(self) -> None:
        with self._lock:
            now = self.now()
            msg = TaskStatus(
                task=self.env.task_name,
                instruction=self.env.instruction,
                seed=self._seed,
                episode=self._episode,
                success=bool(self.env.success()),
                elapsed=now - self._episode_start,
            )
        msg.header.stamp = conv.to_time(now)
        self.status_pub.publish(msg)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5.0)


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = SimNode()
        spin(node)
    except KeyboardInterrupt:
        pass  # Ctrl-C while the node was being built
    finally:
        if node is not None:
            node.stop()
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
