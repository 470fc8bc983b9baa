"""One error root, split by who must act.

* ``ConfigError``: the user's input is wrong (flags, files, tool schemas). Exit code 2.
* ``BackendError``: an LLM backend or its transport failed. ``retryable`` says whether
  trying again may help.
* ``ModelOutputError``: the model answered, but not in the shape asked for. Carries the
  raw text. Inside the pipeline this becomes a rejected dialogue, never a crash.
* ``ToolEnvironmentError``: a tool environment could not be built or driven.
"""

from __future__ import annotations


class NaigError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code = 1


class ConfigError(NaigError):
    """The user's input must change: a flag, a file, a tool schema."""

    exit_code = 2


class BackendError(NaigError):
    """An LLM backend or its transport failed."""

    exit_code = 3

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class ModelOutputError(NaigError):
    """The model's output does not have the requested shape, even after retries."""

    def __init__(self, message: str, *, raw: str = ""):
        super().__init__(message)
        self.raw = raw


class ToolEnvironmentError(NaigError):
    """A tool environment could not be built or driven."""

    exit_code = 4
