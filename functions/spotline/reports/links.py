"""Where a person opens an object: its S3 URI and its S3 console page (never a presigned link).

A console link needs the reader's own AWS sign-in and permissions, so an alert forwarded to the
wrong inbox opens nothing; a presigned URL would be a bearer token to the object until it expires.
"""

from __future__ import annotations

from urllib.parse import quote

CONSOLE = "https://s3.console.aws.amazon.com/s3/object/"


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def console_url(bucket: str, key: str, region: str) -> str:
    """The S3 console's page of ``s3://bucket/key`` (sign-in required)."""
    return f"{CONSOLE}{quote(bucket, safe='')}?region={quote(region, safe='')}&prefix={quote(key, safe='/')}"


def report_links(bucket: str, key: str, region: str) -> dict[str, str]:
    """The two short fields every alert with a page carries: ``report_page`` and ``report_console``."""
    return {"report_page": s3_uri(bucket, key), "report_console": console_url(bucket, key, region)}
