"""naig: multi-turn tool-use dialogues by non-autoregressive iterative generation."""

from naig.config import MethodSettings, RunConfig
from naig.dialogue import Message, Record
from naig.errors import BackendError, BudgetExhausted, ConfigError, ModelOutputError, NaigError
from naig.tools import Tool

__all__ = ["BackendError", "BudgetExhausted", "ConfigError", "Message", "MethodSettings",
           "ModelOutputError", "NaigError", "Record", "RunConfig", "Tool"]
