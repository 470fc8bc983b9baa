"""One error root, split by who must act.

* ``ConfigError``: the user's input is wrong (flags, files, tool schemas). Exit code 2.
* ``BackendError``: an LLM backend or its transport failed. ``retryable`` says whether
  trying again may help; ``retry_after`` is how long the server asked to wait.
  ``BackendTimeout`` (no answer in time) and ``BackendDown`` (the circuit breaker gave
  up on the backend) are kinds of it.
* ``ModelOutputError``: the model answered, but not in the shape asked for. Carries the
  raw text. Inside the pipeline this becomes a rejected dialogue, never a crash.
  ``PromptTooLong`` (the prompt outgrew the model's context window) is a kind of it.
* ``ToolEnvironmentError``: a tool environment could not be built or driven.
* ``BudgetExhausted``: the run reached its cost or token limit. Exit code 5.
* ``OutputError``: the run's output can no longer be written (a full disk, a removed
  file). Exit code 6; what was written before stays, and the same command resumes.
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

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False,
                 retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        """The HTTP status the server answered with; None when no answer came."""
        self.retryable = retryable
        self.retry_after = retry_after
        """Seconds the server asked to wait before trying again (``Retry-After``)."""


class BackendTimeout(BackendError):
    """The backend accepted the request but did not answer in time: often overload."""


class BackendDown(BackendError):
    """Calls to the backend failed so many times in a row that the circuit breaker stopped
    sending more; the run should stop rather than reject dialogue after dialogue."""


class ModelOutputError(NaigError):
    """The model's output does not have the requested shape, even after retries."""

    def __init__(self, message: str, *, raw: str = ""):
        super().__init__(message)
        self.raw = raw


class PromptTooLong(ModelOutputError):
    """The dialogue's prompt is longer than the model's context window: asked again, it
    does not fit either."""


class ToolEnvironmentError(NaigError):
    """A tool environment could not be built or driven."""

    exit_code = 4


class BudgetExhausted(NaigError):
    """The run reached its spending limit (``--max-cost`` or a token limit). Finished work
    is kept; calls already made are cached, so a resumed run does not pay for them again."""

    exit_code = 5


class OutputError(NaigError):
    """The run's output could not be written; the run stops, what it wrote stays."""

    exit_code = 6
