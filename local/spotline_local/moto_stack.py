"""moto in server mode on a loopback port: S3, SQS, SNS, DynamoDB, EventBridge (and Logs) over HTTP."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from spotline_local import die_with_parent
from spotline_local.template import REGION

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class MotoServer:
    """moto's server in a process of its own: its state cannot be reset by an in-process ``mock_aws``,
    and its request handling does not compete with the functions for this process's GIL."""

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, log_path: Path | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        log = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self._process = subprocess.Popen(  # noqa: S603 - this interpreter, moto's own module
            die_with_parent.command("moto.server", "-H", self.host, "-p", str(self.port)),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_PORT": str(self.port)},
            start_new_session=True,  # a Ctrl-C reaches the stack, which then stops moto last
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"moto server exited with {self._process.returncode} (port {self.port} taken?)"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not open {self.endpoint} within {timeout_s:.0f} s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


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
