"""One exception tree for the whole suite, so callers can catch ``Gen0Error`` and every message
says what went wrong and what to do about it."""

from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any


class Gen0Error(Exception):
    """Base class of every error gen0-ros raises on purpose."""


class ConfigError(Gen0Error, ValueError):
    """A configuration file, parameter or description is invalid."""


class EmbodimentError(ConfigError):
    """An embodiment description is missing, malformed, or does not match the data."""


class DatasetError(Gen0Error):
    """A dataset, episode or bag is unreadable or inconsistent."""


class CheckpointError(Gen0Error):
    """A checkpoint is missing, corrupt, or incompatible with the requested model."""


class ObservationError(Gen0Error, ValueError):
    """An observation (image, joint state) cannot be used: wrong encoding, size, NaN, missing joints."""


class CommandError(Gen0Error, ValueError):
    """A command would violate joint limits or names the wrong joints; it is never executed."""


def check_keys(data: Mapping[str, Any], known: Iterable[str], what: str) -> None:
    """Raise ConfigError naming the keys of ``data`` that are not in ``known`` (a typo in a config
    file or an override), listing the known ones."""
    known = sorted(known)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown {what} keys {unknown}; known keys are {known}")


def coerce_numbers(config: Any) -> None:
    """Numeric fields of a dataclass (frozen ones too) made the type of their default. YAML reads
    ``1e-3`` as a string (it wants ``1.0e-3``): accept it, and say clearly what is wrong otherwise, e.g.
    an override ``model.width=2x`` fails here and not deep inside the model."""
    for f in fields(config):
        value = getattr(config, f.name)
        if isinstance(f.default, bool) or not isinstance(f.default, int | float) or isinstance(value, bool):
            continue
        kind = type(f.default)
        try:
            number = float(value)
            if kind is int and not number.is_integer():
                raise ValueError
            object.__setattr__(config, f.name, kind(number))
        except (TypeError, ValueError):
            raise ConfigError(f"{f.name} must be a{'n integer' if kind is int else ' number'}, got {value!r}") from None
