"""Errors that reach the user as a message, not a traceback.

Every error caused by bad input (config, path, checkpoint, control command, data file) is a
:class:`UserError`. The CLI prints its message and exits with :attr:`UserError.exit_code` (2);
``--debug`` shows the traceback too.
"""

from __future__ import annotations


class FtuiError(Exception):
    """Base of ftui's own errors; ``exit_code`` is what the CLI exits with."""

    exit_code: int = 1


class UserError(FtuiError):
    """Bad input: the message names the file, the key and the fix."""

    exit_code = 2


class ConfigError(UserError):
    """A configuration file or override is invalid."""


class DataError(UserError):
    """A dataset, data file or data option is invalid or missing."""


class ModelError(UserError):
    """A model name, weights file or fine-tuning pattern is invalid."""


class CheckpointError(UserError):
    """A checkpoint or weights file cannot be read safely."""


class RunError(UserError):
    """A run directory or run name is invalid."""


class CompressionError(UserError):
    """A compression or export request that cannot be carried out as asked (pruning amount, layer, op)."""


class TrainingFailed(FtuiError):
    """Training stopped because of a failure (non-finite loss, exception, out of memory)."""

    exit_code = 1
