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


def reset_clients() -> None:
    """Forget cached clients (tests that switch between mocked accounts or endpoints)."""
    client.cache_clear()


def error_code(error: Exception) -> str:
    """The AWS error code of a botocore ``ClientError`` ('' for anything else)."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
