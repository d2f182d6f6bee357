"""Meta-World (``metaworld==3.1.1``) behind the project's observation dict, so its Sawyer is one more
embodiment for collection, training and evaluation.

An observation is what every other robot gives the policy: ``embodiment``, ``instruction``,
``joint_positions`` (here the Sawyer's state: hand xyz in m and gripper opening, see
``config/embodiments/sawyer.yaml``) and ``images`` ({camera: (H, W, 3) uint8} at the camera's own
resolution; the model's input comes from :func:`gen0_policy.images.fit_image` like any camera's).
It also carries ``env_state``, Meta-World's 39-D privileged vector (object poses, the goal), which
only the scripted experts read. An episode ends at the env's own limit (``max_path_length``, 500
steps); success is the env's ``info["success"]``.

Meta-World is imported lazily (inside the class), so importing this module, the core and the
hardware path never load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from gen0_policy.data.episode import Episode
from gen0_policy.embodiment import Embodiment, load_embodiment
from gen0_policy.errors import ConfigError

EMBODIMENT = "sawyer"
# Bumped when what a policy sees or does in an episode changes, so results files of an older adapter
# are not resumed into newer ones. 2: the first frame shows the episode's own layout. 3: corner2 is
# mounted where the embodiment description puts it (the literature's closer view).
ADAPTER_VERSION = 3

# The 50 tasks (Meta-World's names without "-v3") and what a person would ask for; paraphrased from
# Meta-World's task descriptions (docs/benchmark/task_descriptions.md).
TASK_INSTRUCTIONS: dict[str, str] = {
    "assembly": "pick up the nut and place it onto the peg",
    "basketball": "dunk the basketball into the basket",
    "bin-picking": "pick the puck out of one bin and place it into the other bin",
    "box-close": "pick up the lid and close the box with it",
    "button-press-topdown": "press the button from the top",
    "button-press-topdown-wall": "reach past the wall and press the button from the top",
    "button-press": "press the button",
    "button-press-wall": "reach past the wall and press the button",
    "coffee-button": "push the button on the coffee machine",
    "coffee-pull": "pull the mug out from under the coffee machine",
    "coffee-push": "push the mug under the coffee machine",
    "dial-turn": "turn the dial half a turn",
    "disassemble": "pick the nut off the peg",
    "door-close": "close the door",
    "door-lock": "lock the door by turning the lock",
    "door-open": "open the door",
    "door-unlock": "unlock the door by turning the lock",
    "drawer-close": "push the drawer closed",
    "drawer-open": "pull the drawer open",
    "faucet-close": "turn the faucet clockwise to close it",
    "faucet-open": "turn the faucet counter-clockwise to open it",
    "hammer": "hammer the nail into the wall",
    "hand-insert": "put the gripper into the hole",
    "handle-press-side": "press the handle down from the side",
    "handle-press": "press the handle down",
    "handle-pull-side": "pull the handle up from the side",
    "handle-pull": "pull the handle up",
    "lever-pull": "pull the lever up",
    "peg-insert-side": "insert the peg into the hole from the side",
    "peg-unplug-side": "pull the peg out of the hole sideways",
    "pick-out-of-hole": "pick the puck up out of the hole",
    "pick-place": "pick up the puck and place it at the goal",
    "pick-place-wall": "pick up the puck, reach over the wall and place it at the goal",
    "plate-slide": "slide the plate into the cabinet",
    "plate-slide-back": "slide the plate out of the cabinet",
    "plate-slide-back-side": "slide the plate out of the cabinet sideways",
    "plate-slide-side": "slide the plate into the cabinet sideways",
    "push": "push the puck to the goal",
    "push-back": "pull the puck back to the goal",
    "push-wall": "push the puck past the wall to the goal",
    "reach": "reach the goal position",
    "reach-wall": "reach past the wall to the goal position",
    "shelf-place": "pick up the puck and place it on the shelf",
    "soccer": "push the ball into the goal",
    "stick-pull": "grasp the stick and pull the box with it",
    "stick-push": "grasp the stick and push the box with it",
    "sweep": "sweep the puck off the table",
    "sweep-into": "sweep the puck into the hole",
    "window-close": "slide the window closed",
    "window-open": "slide the window open",
}

MT10 = (
    "reach",
    "push",
    "pick-place",
    "door-open",
    "drawer-open",
    "drawer-close",
    "button-press-topdown",
    "peg-insert-side",
    "window-open",
    "window-close",
)
ML45_TEST = ("bin-picking", "box-close", "hand-insert", "door-lock", "door-unlock")
SUITES: dict[str, tuple[str, ...]] = {
    "mt10": MT10,
    "mt50": tuple(TASK_INSTRUCTIONS),
    "ml45_train": tuple(t for t in TASK_INSTRUCTIONS if t not in ML45_TEST),
    "ml45_test": ML45_TEST,
}

# The difficulty groups the literature reports MT50 by (Seo et al. 2022, "Masked World Models",
# as used by SmolVLA's and TD-MPC2's tables): 28 easy, 11 medium, 6 hard, 5 very hard.
DIFFICULTY: dict[str, tuple[str, ...]] = {
    "easy": (
        "button-press",
        "button-press-topdown",
        "button-press-topdown-wall",
        "button-press-wall",
        "coffee-button",
        "dial-turn",
        "door-close",
        "door-lock",
        "door-open",
        "door-unlock",
        "drawer-close",
        "drawer-open",
        "faucet-close",
        "faucet-open",
        "handle-press",
        "handle-press-side",
        "handle-pull",
        "handle-pull-side",
        "lever-pull",
        "plate-slide",
        "plate-slide-back",
        "plate-slide-back-side",
        "plate-slide-side",
        "reach",
        "reach-wall",
        "window-close",
        "window-open",
        "peg-unplug-side",
    ),
    "medium": (
        "basketball",
        "bin-picking",
        "box-close",
        "coffee-pull",
        "coffee-push",
        "hammer",
        "peg-insert-side",
        "push-wall",
        "soccer",
        "sweep",
        "sweep-into",
    ),
    "hard": ("assembly", "hand-insert", "pick-out-of-hole", "pick-place", "push", "push-back"),
    "very_hard": ("shelf-place", "disassemble", "stick-pull", "stick-push", "pick-place-wall"),
}


def task_name(name: str) -> str:
    """Meta-World's task name without the version ("pick-place-v3", "pick_place" -> "pick-place")."""
    key = name.strip().lower().replace("_", "-").removesuffix("-v3")
    if key not in TASK_INSTRUCTIONS:
        raise ConfigError(f"unknown Meta-World task {name!r}; tasks are {sorted(TASK_INSTRUCTIONS)}")
    return key


def suite_tasks(suite: str) -> tuple[str, ...]:
    if suite not in SUITES:
        raise ConfigError(f"unknown Meta-World suite {suite!r}; suites are {sorted(SUITES)}")
    return SUITES[suite]


def difficulty(task: str) -> str:
    task = task_name(task)
    return next(group for group, tasks in DIFFICULTY.items() if task in tasks)


def plain_scene(scene: Any) -> None:
    """Shadows and reflections off, in every renderer of Meta-World (demonstrations, the benchmark and
    the sim node alike): a frame the policy sees must look like the frames it was trained on."""
    import mujoco

    scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0


def _checked(action: np.ndarray) -> np.ndarray:
    """A 4-D Sawyer action as Meta-World takes it (float32, each entry clipped to -1..1)."""
    action = np.clip(np.asarray(action, np.float64).reshape(-1), -1.0, 1.0)
    if action.shape != (4,) or not np.all(np.isfinite(action)):
        raise ConfigError(f"a Sawyer action is 4 finite numbers (dx, dy, dz, grab), got {action}")
    return action.astype(np.float32)


def upright(frame: np.ndarray, upside_down: bool) -> np.ndarray:
    """The one fix for Meta-World's corner cameras, which are mounted rolled half a turn: rotate 180°."""
    return np.ascontiguousarray(frame[::-1, ::-1]) if upside_down else frame


def mount_cameras(model: Any, mounts: dict[str, Any]) -> None:
    """Move Meta-World's cameras to the positions (m, world frame) the embodiment description gives in
    ``sim.cameras``, keeping their orientation. Meta-World's own corner2 sits 1.6 m from the table and
    shows the goal as one or two pixels; the vision-policy literature (LeRobot's Meta-World env, whose
    protocol gave SmolVLA's and pi0's MT50 figures, and the papers it follows) moves it to
    (0.75, 0.075, 0.7), where the workspace fills the frame."""
    import mujoco

    for name, mount in mounts.items():
        cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
        if cam < 0:
            raise ConfigError(f"sim.cameras.{name}: Meta-World has no camera {name!r}")
        if "pos" in mount:
            pos = np.asarray(mount["pos"], np.float64)
            if pos.shape != (3,) or not np.all(np.isfinite(pos)):
                raise ConfigError(f"sim.cameras.{name}.pos must be 3 finite numbers (m), got {mount['pos']}")
            model.cam_pos[cam] = pos


def camera_upside_down(model: Any, data: Any, camera: str) -> bool:
    """True when the camera's image-up axis (column 1 of MuJoCo's camera frame) points below the
    horizon, i.e. the world's up would come out at the bottom of the image."""
    import mujoco

    cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    return bool(data.cam_xmat[cam].reshape(3, 3)[2, 1] < 0.0)


class MetaWorldEnv:
    """One Meta-World task, reset by seed: seed s gives the same object and goal layout every time.

    ``cameras``: names to render (default the embodiment's); ``camera_size``: (W, H) for all of them
    (default each camera's own size in the embodiment description).
    """

    def __init__(
        self,
        task: str,
        cameras: Sequence[str] | None = None,
        camera_size: tuple[int, int] | None = None,
    ) -> None:
        import mujoco
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

        self.embodiment: Embodiment = load_embodiment(EMBODIMENT)
        self.task = task_name(task)
        self.instruction = TASK_INSTRUCTIONS[self.task]
        self._env = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{self.task}-v3-goal-observable"](seed=0)
        self._env._freeze_rand_vec = False  # a new layout per reset, drawn from the env's seeded generator
        self._env.seeded_rand_vec = True
        self.max_steps = int(self._env.max_path_length)
        self.control_dt = float(self._env.dt)
        model = self._env.model
        names = list(cameras) if cameras is not None else [c.name for c in self.embodiment.cameras]
        known = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise ConfigError(f"Meta-World has no cameras {unknown}; its cameras are {known}")
        sizes = {c.name: (c.width, c.height) for c in self.embodiment.cameras}
        self.camera_sizes = {n: camera_size or sizes.get(n, (480, 480)) for n in names}
        vis = model.vis.global_
        vis.offwidth = max([vis.offwidth, *(w for w, _ in self.camera_sizes.values())])
        vis.offheight = max([vis.offheight, *(h for _, h in self.camera_sizes.values())])
        mount_cameras(model, self.embodiment.sim.get("cameras", {}))
        self.upside_down = frozenset(n for n in names if camera_upside_down(model, self._env.data, n))
        self._renderers: dict[tuple[int, int], Any] = {}
        self._raw: np.ndarray | None = None
        self.steps = 0

    # -- episode --------------------------------------------------------------------------------
    def reset(self, seed: int, images: bool = True) -> dict[str, Any]:
        import mujoco

        self._env.seed(int(seed))
        self._raw, _ = self._env.reset()
        # Meta-World's reset moves fixtures and goal markers in the model (drawer, window, goal sites)
        # after its last forward pass, so the world poses a renderer draws are the previous layout's
        # until the first step: in 29 of the 50 tasks the first frame showed the last episode's scene.
        # A forward pass derives them again; it leaves the state and the physics that follows alone.
        mujoco.mj_forward(self._env.model, self._env.data)
        self.steps = 0
        return self.observation(images)

    def settle_hand(self, steps: int, images: bool = True) -> dict[str, Any]:
        """Run Meta-World's own hand-settling loop (its reset's ``_reset_hand``: the mocap held at the start
        position, the fingers open) ``steps`` times more, then observe. Its reset stops after 50 with the
        hand 4.6 mm from where the mocap holds it; 60 more leave it within 0.1 mm. Not a step of the
        episode: its step count and the 500-step limit are untouched."""
        if self._raw is None:
            raise ConfigError("reset the Meta-World env before settling its hand")
        env = self._env
        env._reset_hand(steps)
        env._prev_obs = env._get_curr_obs_combined_no_goal()  # as its reset stacks the first frame
        self._raw = np.asarray(env._get_obs(), np.float64)
        return self.observation(images)

    def step(self, action: np.ndarray, images: bool = True) -> tuple[dict[str, Any], bool]:
        """Apply one 4-D action; returns the next observation and the env's success flag."""
        if self._raw is None:
            raise ConfigError("reset the Meta-World env before stepping it")
        if self.steps >= self.max_steps:
            raise ConfigError(f"episode is over: {self.task} allows {self.max_steps} steps; reset it")
        self._raw, _, _, _, info = self._env.step(_checked(action))
        self.steps += 1
        return self.observation(images), bool(info["success"])

    def step_after_limit(self, action: np.ndarray, images: bool = True) -> dict[str, Any]:
        """One step of physics once the episode's step limit is spent, with no success judged: a simulated
        robot goes on following its commands after the benchmark's episode is over (the sim node's hand
        held still there, and a policy that came up late never moved it). Meta-World's own step, its count
        held at the limit (it refuses to step past it)."""
        if self._raw is None:
            raise ConfigError("reset the Meta-World env before stepping it")
        if self.steps < self.max_steps:
            raise ConfigError(f"{self.task}'s episode has steps left: step() judges them")
        self._env.curr_path_length = self.max_steps - 1
        self._raw = self._env.step(_checked(action))[0]
        return self.observation(images)

    def observation(self, images: bool = True) -> dict[str, Any]:
        assert self._raw is not None
        return {
            "embodiment": EMBODIMENT,
            "instruction": self.instruction,
            "time": self.steps * self.control_dt,
            "joint_positions": np.asarray(self._raw[:4], np.float64),  # hand xyz (m), gripper opening (0..1)
            "env_state": np.asarray(self._raw, np.float64),  # privileged: for the scripted experts only
            "images": {cam: self.render(cam) for cam in self.camera_sizes} if images else {},
        }

    def render(self, camera: str) -> np.ndarray:
        """uint8 (H, W, 3), upright, at the camera's size. Shadows and reflections are off: the same
        scene at a quarter of the cost on a CPU renderer (0.16 vs 0.65 s for a 480x480 frame here)."""
        import mujoco

        w, h = self.camera_sizes[camera]
        if (w, h) not in self._renderers:
            self._renderers[(w, h)] = mujoco.Renderer(self._env.model, height=h, width=w)
        renderer = self._renderers[(w, h)]
        renderer.update_scene(self._env.data, camera=camera)
        plain_scene(renderer.scene)
        return upright(renderer.render(), camera in self.upside_down)

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        self._env.close()

    def __enter__(self) -> MetaWorldEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- controllers ------------------------------------------------------------------------------------
class Controller(Protocol):
    """An expert or a trained policy: ``needs_images`` says whether observations need rendering."""

    needs_images: bool

    def reset(self, env: MetaWorldEnv) -> None: ...

    def act(self, observation: dict[str, Any]) -> np.ndarray: ...


class MetaWorldExpert:
    """Meta-World's own scripted policy for the task (``metaworld.policies``), from the privileged state."""

    needs_images = False

    def __init__(self) -> None:
        self._policy: Any = None
        self._task = ""

    def reset(self, env: MetaWorldEnv) -> None:
        if env.task != self._task:
            from metaworld.policies import ENV_POLICY_MAP

            self._policy, self._task = ENV_POLICY_MAP[f"{env.task}-v3"](), env.task

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        return np.clip(np.asarray(self._policy.get_action(observation["env_state"]), np.float64), -1.0, 1.0)


class ChunkController:
    """A trained Gen0Policy: infer a chunk of per-step actions, play ``execute`` rows of it (one per
    env step, deltas are not interpolated), infer again."""

    needs_images = True

    def __init__(self, path: str, execute: int | None = None) -> None:
        from gen0_policy.model.policy import Gen0Policy

        self.policy = Gen0Policy.load(path)
        sawyer = load_embodiment(EMBODIMENT)
        self.policy.check_embodiment(sawyer)  # refuse before any result is written
        if abs(self.policy.step_dt * sawyer.control_rate_hz - 1.0) > 1e-6:
            raise ConfigError(
                f"the policy steps every {self.policy.step_dt:.4f} s but Meta-World every "
                f"{1 / sawyer.control_rate_hz:.4f} s; train on data recorded at every env step "
                "(gen0 sim collect-metaworld)"
            )
        self.execute = execute or sawyer.sync_execute_steps(self.policy.chunk_size)
        if not 1 <= self.execute <= self.policy.chunk_size:
            raise ConfigError(f"execute must be in [1, {self.policy.chunk_size}] (the chunk), got {self.execute}")
        self._chunk: np.ndarray | None = None
        self._row = 0

    def reset(self, env: MetaWorldEnv) -> None:
        self._chunk, self._row = None, 0

    def wants_images(self) -> bool:
        """Only the steps that run inference need rendered cameras."""
        return self._chunk is None or self._row >= self.execute

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        if self._chunk is None or self._row >= self.execute:
            keys = ("embodiment", "instruction", "joint_positions", "images")
            self._chunk = np.asarray(self.policy.infer({k: observation[k] for k in keys})["actions"], np.float64)
            self._row = 0
        action = self._chunk[self._row]
        self._row += 1
        return action


def make_controller(policy: str, execute: int | None = None) -> Controller:
    """``expert`` or a checkpoint folder."""
    return MetaWorldExpert() if policy == "expert" else ChunkController(policy, execute)


# -- one episode ------------------------------------------------------------------------------------
@dataclass
class EpisodeResult:
    task: str
    seed: int
    success: bool
    steps: int  # env steps until success, or the limit
    episode: Episode | None = field(default=None, repr=False)


def run_episode(
    env: MetaWorldEnv,
    controller: Controller,
    seed: int,
    record: bool = False,
    linger: int = 5,
    image_size: tuple[int, int] | None = None,
    max_steps: int | None = None,
    action_noise: float = 0.0,
    action_noise_time_constant_s: float = 0.1,
) -> EpisodeResult:
    """Reset ``env`` with ``seed`` and let ``controller`` act until the env reports success (then
    ``linger`` more steps when recording, so a demonstration ends settled) or its step limit.
    ``record``: keep every step (states, actions, frames fitted to ``image_size`` if given).
    ``action_noise``: demonstrations with recoveries (DART), as ``gen0 sim collect --action-noise`` for
    our robots: the hand executes the controller's displacement plus a seeded Ornstein-Uhlenbeck
    offset of this standard deviation (action units, 0.01 m per step each; never the gripper effort),
    while the recorded action stays the controller's own, computed from where the hand really is.
    Its time constant is shorter than our arms' 0.4 s: Meta-World's experts take back only about a
    tenth of an offset per step, so a slow one drags the hand off its path and their phases time out
    (measured on 10 tasks: 0.2 units at 0.1 s, a median 1.4 cm off the clean path, 33/40 succeed;
    at 0.4 s, 1.5 cm with a tail to 6 cm and 31/40)."""
    from gen0_policy.images import fit_image
    from gen0_policy.sim.rollout import ActionNoise

    controller.reset(env)
    perturb = None
    if action_noise > 0:
        hand = np.array([True, True, True, False])
        perturb = ActionNoise(
            hand, -np.ones(4), np.ones(4), env.control_dt, action_noise, action_noise_time_constant_s, seed
        )

    def looks() -> bool:  # render only when the frame is recorded or the controller will look at it
        wants = getattr(controller, "wants_images", None)
        return record or (wants() if callable(wants) else controller.needs_images)

    obs = env.reset(seed, images=looks())
    limit = min(env.max_steps, max_steps or env.max_steps)
    states, actions, frames = [], [], {cam: [] for cam in env.camera_sizes}
    success_step: int | None = None
    while env.steps < limit:
        action = np.asarray(controller.act(obs), np.float64)
        if record:
            states.append(obs["joint_positions"])
            actions.append(np.clip(action, -1.0, 1.0))
            for cam, frame in obs["images"].items():
                frames[cam].append(frame if image_size is None else fit_image(frame, *image_size))
        obs, success = env.step(action if perturb is None else perturb(action), images=looks())
        if success and success_step is None:
            success_step = env.steps
        if success_step is not None and (not record or env.steps >= success_step + linger):
            break
    success = success_step is not None
    episode = None
    if record:
        episode = Episode(
            embodiment=EMBODIMENT,
            instruction=env.instruction,
            fps=1.0 / env.control_dt,
            states=np.stack(states),
            actions=np.stack(actions),
            images={cam: np.stack(f) for cam, f in frames.items()},
            success=success,
            task=env.task,
            metadata={
                "seed": seed,
                "source": "metaworld_expert",
                "suite": "metaworld",
                "success_step": success_step,
                "action_noise": action_noise,
            },
        )
    return EpisodeResult(env.task, seed, success, success_step or env.steps, episode)
