"""A persistent response cache: SQLite under the user cache folder.

The key is ``Request.key(backend)``: backend and model, messages, schema, sampling
parameters, seed and prompt-template hash. A hit returns the text with the usage and
time measured when it was first produced, marked ``cached``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

import platformdirs

from naig.errors import ConfigError
from naig.llm.base import LLM, Completion, Request, Wrapper

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
  key TEXT PRIMARY KEY,
  backend TEXT NOT NULL,
  text TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  seconds REAL NOT NULL,
  created REAL NOT NULL,
  cached_prompt_tokens INTEGER NOT NULL DEFAULT 0
)"""


def default_cache_path() -> Path:
    root = os.environ.get("NAIG_CACHE_DIR") or platformdirs.user_cache_dir("naig")
    return Path(root) / "responses.sqlite"


class CachedLLM(Wrapper):
    def __init__(self, inner: LLM, path: Path | None = None):
        super().__init__(inner)
        self.path = path or default_cache_path()
        self.unwritten = 0
        """Answers that could not be stored (a full disk): used, not cached."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self._open()
        except (OSError, sqlite3.Error) as e:
            raise ConfigError(f"cannot use the response cache {self.path} ({e}); free the "
                              "space, or give another --cache-path, or pass --no-cache"
                              ) from None

    def _open(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
        if "cached_prompt_tokens" not in columns:  # a cache written by an earlier version
            try:
                self._db.execute("ALTER TABLE responses ADD COLUMN cached_prompt_tokens "
                                 "INTEGER NOT NULL DEFAULT 0")
            except sqlite3.OperationalError as e:  # another process added it just now
                if "duplicate column" not in str(e):
                    raise
        self._db.commit()

    def get(self, key: str) -> Completion | None:
        row = self._db.execute(
            "SELECT text, prompt_tokens, completion_tokens, seconds, cached_prompt_tokens "
            "FROM responses WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        return Completion(text=row[0], prompt_tokens=row[1], completion_tokens=row[2],
                          seconds=row[3], cached_prompt_tokens=row[4], cached=True)

    def put(self, key: str, completion: Completion) -> None:
        """Store an answer; one that cannot be stored (a full disk) is still used."""
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO responses(key, backend, text, prompt_tokens, "
                "completion_tokens, seconds, created, cached_prompt_tokens) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (key, self.name, completion.text, completion.prompt_tokens,
                 completion.completion_tokens, completion.seconds, time.time(),
                 completion.cached_prompt_tokens))
            self._db.commit()
        except sqlite3.Error:
            self.unwritten += 1
            with contextlib.suppress(sqlite3.Error):
                self._db.rollback()

    async def complete(self, request: Request) -> Completion:
        key = request.key(self.name + self.fingerprint)
        hit = self.get(key)
        if hit is not None:
            return hit
        completion = await self.inner.complete(request)
        self.put(key, completion)
        return completion

    async def aclose(self) -> None:
        self._db.close()
        await self.inner.aclose()
