"""MuJoCo worlds: embodiments, scenes, tasks, success checks and scripted experts.

``make_env(embodiment, task, seed)`` builds a world; ``make_expert(env)`` a scripted demonstrator
for it; ``available_tasks()`` lists the tasks. Nothing here imports ROS.
"""

from gen0_policy.sim.env import SimEnv, make_env
from gen0_policy.sim.experts import make_expert
from gen0_policy.sim.tasks import available_tasks

__all__ = ["SimEnv", "available_tasks", "make_env", "make_expert"]
