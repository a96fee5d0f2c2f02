"""boto3 clients built lazily, once per process, with botocore's adaptive retry (throttling backoff).

Endpoints come from the standard ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` variables,
which is how the local stack points the very same code at moto and the local SageMaker.
"""

from __future__ import annotations

import functools
from typing import Any

RETRY_MODE = "adaptive"
MAX_ATTEMPTS = 8


@functools.cache
def client(service: str) -> Any:
    """A shared client for ``service`` (built on first use, not at import)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        config=Config(
            retries={"mode": RETRY_MODE, "max_attempts": MAX_ATTEMPTS}, connect_timeout=5, read_timeout=30
        ),
    )


class ServiceClient:
    """An adapter's client attribute: the one it was given, else the shared client, built on first read.

    ``s3 = ServiceClient("s3")`` in the class body; ``self.s3 = client_or_none`` in ``__init__``.
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self.slot = f"_{service}_client"

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, adapter: object, owner: type | None = None) -> Any:
        given = vars(adapter).get(self.slot)
        if given is None:
            given = vars(adapter)[self.slot] = client(self.service)
        return given

    def __set__(self, adapter: object, value: Any) -> None:
        vars(adapter)[self.slot] = value


def reset_clients() -> None:
    """Forget cached clients (tests that switch between mocked accounts or endpoints)."""
    client.cache_clear()


def error_code(error: Exception) -> str:
    """The AWS error code of a botocore ``ClientError`` ('' for anything else)."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
