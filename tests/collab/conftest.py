"""Fixtures of the collaboration tests: the notification pipeline's and the websocket ones are
shared with their own suites (imported here so that pytest offers them to these tests); the
evidence store runs on a directory and on a real S3-compatible server (moto in server mode)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from signoff.domain.clock import ManualClock
from signoff.services import comments as comment_services
from signoff.services.context import ServiceContext
from signoff.settings import Settings
from signoff.storage import ObjectStorage
from signoff.storage.local import LocalStorage
from signoff.storage.s3 import S3Storage
from signoff.testing import free_port
from tests.conftest import actor
from tests.notify.conftest import notify_settings, nsvc, quiet_leftovers  # noqa: F401
from tests.realtime.conftest import hub, ws_url  # noqa: F401


async def comment(
    services: ServiceContext, tenant: str, user: str, body: str, *roles: str, **target: Any
) -> Any:
    """Write a comment as `user` on `target` (item_id=, step_id= or reply_to_id=)."""
    return await comment_services.add_comment(
        actor(tenant, user, *roles), services, comment_services.AddCommentInput(body=body, **target)
    )


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real S3-compatible server (moto in server mode) on a loopback port of its own."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert process.poll() is None, "moto_server exited"
            assert time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


def s3_client(endpoint: str) -> Any:
    """A plain boto3 client, to look at (and tamper with) the bucket from outside."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",  # noqa: S106 - moto's placeholder credentials
        region_name="us-east-1",
    )


class StoreProbe:
    """What a test needs to see and tamper with a store from outside signoff."""

    def __init__(
        self, storage: ObjectStorage, root: Path | None, bucket: str | None, endpoint: str | None
    ) -> None:
        self.storage = storage
        self.root = root
        self.bucket = bucket
        self.client = s3_client(endpoint) if endpoint else None

    def keys(self) -> list[str]:
        if self.root is not None:
            return sorted(
                str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()
            )
        listed = self.client.list_objects_v2(Bucket=self.bucket)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def incomplete_uploads(self) -> list[Any]:
        if self.client is None:
            return []
        return self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []) or []

    def overwrite(self, key: str, content: bytes) -> None:
        if self.root is not None:
            (self.root / key).write_bytes(content)
        else:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=content)

    def remove(self, key: str) -> None:
        if self.root is not None:
            (self.root / key).unlink()
        else:
            self.client.delete_object(Bucket=self.bucket, Key=key)


@pytest.fixture(params=["local", "s3"])
def store(request: Any, tmp_path: Path) -> StoreProbe:
    """Each evidence test runs on the local file system and on the S3-compatible server."""
    if request.param == "local":
        root = tmp_path / "evidence"
        return StoreProbe(LocalStorage(root), root, None, None)
    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = f"evidence-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    storage = S3Storage(
        bucket,
        endpoint=endpoint,
        region="us-east-1",
        access_key_id="test",
        secret_access_key="test",  # noqa: S106
    )
    return StoreProbe(storage, None, bucket, endpoint)


@pytest.fixture
def esvc(settings: Settings, clock: ManualClock, store: StoreProbe) -> ServiceContext:
    """Services writing evidence to the test's store."""
    return ServiceContext(settings=settings, clock=clock, storage=store.storage)
