"""Errors a user can act on. Interfaces print their message on one line and exit non-zero."""


class DatagenError(Exception):
    """A problem with the user's input or environment, not a bug: its message says what to do."""


class ProjectLockedError(DatagenError):
    """The project's DuckDB file is held by another process (a CLI run or the studio)."""


class LLMError(DatagenError):
    """The LLM endpoint failed in a way retries did not fix."""


class LLMFatalError(LLMError):
    """A failure no retry can fix (bad key, unreachable host, unknown model): stop the run at once."""
