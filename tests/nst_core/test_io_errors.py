"""Storage and network errors in words: each kind of failure a store can raise, transient or not."""

from __future__ import annotations

import errno
import socket
import urllib.error

import aiohttp
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from nst_core import StorageError
from nst_core.io_errors import describe, storage_error


def chained(outer: BaseException, *causes: BaseException) -> BaseException:
    """``outer`` raised from ``causes[0]``, raised from ``causes[1]`` ..."""
    for exc, cause in zip([outer, *causes], causes, strict=False):
        exc.__cause__ = cause
    return outer


def s3_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "PutObject")


def http_error(status: int) -> aiohttp.ClientResponseError:
    return aiohttp.ClientResponseError(None, (), status=status)  # type: ignore[arg-type]


CASES = [
    # as fsspec's HTTP file system raises them: "not found", caused by what really happened
    (
        chained(FileNotFoundError("https://h/x.jpg"), socket.gaierror(-2, "Name or service not known")),
        "host not found (no network?)",
        False,
    ),
    (chained(FileNotFoundError("u"), ConnectionRefusedError(111, "Connect call failed")), "connection refused", True),
    (chained(FileNotFoundError("u"), http_error(503)), "HTTP 503 from the server", True),
    (chained(FileNotFoundError("u"), http_error(429)), "HTTP 429 from the server", True),
    (chained(FileNotFoundError("u"), http_error(404)), "not found (HTTP 404)", False),
    (chained(FileNotFoundError("u"), http_error(403)), "access denied (HTTP 403)", False),
    (ConnectionResetError(104, "Connection reset by peer"), "connection lost", True),
    (TimeoutError(), "timed out", True),
    # S3 through botocore and s3fs
    (EndpointConnectionError(endpoint_url="http://minio:9000"), "cannot connect to the S3 endpoint", True),
    (
        chained(EndpointConnectionError(endpoint_url="http://minio:9000"), socket.gaierror(-2, "unknown")),
        "host not found (no network?)",
        False,
    ),
    (
        chained(OSError(errno.EIO, "Please reduce your request rate."), s3_error("SlowDown")),
        "S3 is throttling requests (SlowDown)",
        True,
    ),
    (chained(PermissionError("Access Denied"), s3_error("AccessDenied")), "access denied (AccessDenied)", False),
    (chained(FileNotFoundError("no such key"), s3_error("NoSuchKey")), "not found", False),
    (chained(FileNotFoundError("no such bucket"), s3_error("NoSuchBucket")), "bucket not found", False),
    # local disks
    (FileNotFoundError(errno.ENOENT, "No such file"), "not found", False),
    (PermissionError(errno.EACCES, "Permission denied"), "access denied", False),
    (OSError(errno.EROFS, "Read-only file system"), "read-only file system", False),
    (OSError(errno.ENOSPC, "No space left on device"), "no space left on device", False),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk quota exceeded", False),
    (IsADirectoryError(errno.EISDIR, "Is a directory"), "is a folder, not a file", False),
    (OSError(errno.EIO, "Input/output error"), "Input/output error", True),
    # urllib (torch.hub's downloads) keeps the cause in .reason
    (
        urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution")),
        "host not found (no network?)",
        False,
    ),
]


@pytest.mark.parametrize(
    ("exc", "cause", "transient"), CASES, ids=[c[1] + ("" if c[2] else " (permanent)") for c in CASES]
)
def test_describe(exc: BaseException, cause: str, transient: bool) -> None:
    assert describe(exc) == (cause, transient)


def test_other_errors_are_not_storage_errors() -> None:
    assert describe(ValueError("a bug")) is None
    error = storage_error(ValueError("Protocol not known: foo"), "content image", "foo://x")
    assert (str(error), error.transient) == ("content image foo://x: ValueError: Protocol not known: foo", False)


def test_a_storage_error_names_what_and_where_and_survives_pickling() -> None:
    import pickle

    error = storage_error(ConnectionRefusedError(111, "refused"), "output", "s3://b/p")
    assert isinstance(error, StorageError | OSError)
    assert str(error) == "output s3://b/p: connection refused"
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.transient, again.uri) == (str(error), True, "s3://b/p")
    assert str(error.as_("style image")) == "style image s3://b/p: connection refused"
