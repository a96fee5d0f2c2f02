"""The errors the runner tells apart: the user's (bad config, bad data) and an interruption."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user must fix (config, data, channels); relaunching would fail the same way."""


class DataError(UserError):
    """A channel's data cannot be used: missing, unreadable or inconsistent."""


class Interrupted(Exception):
    """SIGTERM arrived; state was saved and the process should exit with :data:`SIGTERM_EXIT_CODE`."""


SIGTERM_EXIT_CODE = 143  # 128 + SIGTERM, what a shell reports for a process ended by SIGTERM
