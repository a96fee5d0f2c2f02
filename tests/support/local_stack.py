"""A local stack running for a test module or package, its environment set as the functions' own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from spotline_local.stack import LocalStack, StackOptions


@contextlib.contextmanager
def running_stack(options: StackOptions) -> Iterator[LocalStack]:
    """Services, this process's environment set (and restored) as the functions', then the functions;
    stopped on the way out, whatever happened."""
    stack = LocalStack(options)
    stack.start_services()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in stack.environment().items():
                mp.setenv(name, value)
            for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
                mp.delenv(name, raising=False)
            stack.start_functions()
            yield stack
            stack.stop()
    finally:
        stack.stop()
