"""Errors a learner can act on: each message says what is missing and what to do next."""


class TransferlabError(Exception):
    """Base class for transferlab's own errors."""


class Unavailable(TransferlabError):
    """Weights or data that cannot be had here (offline, not cached, package missing)."""


class ConfigError(TransferlabError, ValueError):
    """A setting that cannot work (freeze depth beyond the backbone, too few images, ...)."""


class StopTraining(TransferlabError):
    """Raised by a callback (or a stop request) to end training after the current batch."""


class TrainingDiverged(TransferlabError):
    """The loss became NaN or infinite: the message names the arm, the step and what to lower."""
