"""One exception tree for the whole suite, so callers can catch ``Gen0Error`` and every message
says what went wrong and what to do about it."""


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
