"""moto in server mode on a loopback port: S3, SQS, SNS, DynamoDB, EventBridge (and Logs) over HTTP."""

from __future__ import annotations

import functools
import socket
from typing import Any

from spotline_local.template import REGION

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class MotoServer:
    """A moto server in a thread; ``endpoint`` is its URL once started."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._server: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


class Clients:
    """boto3 clients for one endpoint, built once per service: ``clients("s3")``."""

    def __init__(self, endpoint: str, overrides: dict[str, str] | None = None, region: str = REGION) -> None:
        self.endpoint = endpoint
        self.overrides = overrides or {}
        self.region = region

    @functools.cache  # noqa: B019 - one instance per stack, lives as long as the stack
    def __call__(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.overrides.get(service, self.endpoint),
            region_name=self.region,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(
                retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=60
            ),
        )
