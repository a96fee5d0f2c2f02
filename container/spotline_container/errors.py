"""The detector's own kind of user error; the contract's errors are the toolkit's."""

from __future__ import annotations

from spotline_toolkit.failures import UserError


class DataError(UserError):
    """A channel's data cannot be used: missing, unreadable or inconsistent."""
