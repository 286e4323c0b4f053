"""Storage and network errors in words: what went wrong, and whether trying again later may help.

fsspec's backends (local files, s3fs/botocore, aiohttp for HTTP) raise many exception types, often
wrapped: an unreachable HTTP host surfaces as ``FileNotFoundError`` caused by a DNS error. The whole
chain is read, most specific cause first. Transient: connection refused or lost, timeouts, HTTP 429
and 5xx, S3 throttling, an unreachable S3 endpoint. Permanent: not found, no access, read-only or
full disk, a host name that does not resolve.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

from nst_core.errors import NstError, StorageError

__all__ = ["describe", "storage_error"]

_THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
_S3_UNAVAILABLE = {"RequestTimeout", "InternalError", "ServiceUnavailable", "503", "500"}
_LOST = {"ServerDisconnectedError", "ClientPayloadError", "ConnectionClosedError"}  # aiohttp, botocore
_TIMED_OUT = {"ReadTimeoutError", "ConnectTimeoutError", "FSTimeoutError"}  # botocore, fsspec
_PERMANENT_ERRNOS = {
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENAMETOOLONG: "name too long",
}


def storage_error(exc: BaseException, what: str, uri: str) -> StorageError:
    """``exc``, raised while reading or writing ``uri`` (a ``what``), as a one-line ``StorageError``."""
    if isinstance(exc, StorageError):
        return exc
    cause, transient = describe(exc) or (_plain(exc), False)
    return StorageError(what, uri, cause, transient=transient)


def describe(exc: BaseException) -> tuple[str, bool] | None:
    """(cause in words, transient) for a storage or network error; None for any other error."""
    chain = list(_chain(exc))
    for rule in (_dns, _network, _http_status, _s3_code, _os_error):
        for link in chain:
            if (found := rule(link)) is not None:
                return found
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes; urllib's URLError keeps its cause in ``reason``."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        link = todo.pop(0)
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        reason = getattr(link, "reason", None)
        todo += [link.__cause__, link.__context__, reason if isinstance(reason, BaseException) else None]


def _names(exc: BaseException) -> set[str]:
    """Class names in ``exc``'s MRO: aiohttp and botocore types are matched by name, without importing them."""
    return {cls.__name__ for cls in type(exc).__mro__}


def _dns(exc: BaseException) -> tuple[str, bool] | None:
    return ("host not found (no network?)", False) if isinstance(exc, socket.gaierror) else None


def _network(exc: BaseException) -> tuple[str, bool] | None:
    names = _names(exc)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused", True
    if isinstance(exc, ConnectionError) or names & _LOST:
        return "connection lost", True
    if isinstance(exc, TimeoutError) or names & _TIMED_OUT:
        return "timed out", True
    if "EndpointConnectionError" in names:
        return "cannot connect to the S3 endpoint", True
    return None


def _http_status(exc: BaseException) -> tuple[str, bool] | None:
    status = getattr(exc, "status", None)
    if not isinstance(status, int) or "ClientResponseError" not in _names(exc):
        return None
    if status == 404:
        return "not found (HTTP 404)", False
    if status in (401, 403):
        return f"access denied (HTTP {status})", False
    return f"HTTP {status} from the server", status == 429 or status >= 500


def _s3_code(exc: BaseException) -> tuple[str, bool] | None:
    response = getattr(exc, "response", None)
    if "ClientError" not in _names(exc) or not isinstance(response, dict):
        return None
    code = str(response.get("Error", {}).get("Code", ""))
    if code in _THROTTLED:
        return f"S3 is throttling requests ({code})", True
    if code in _S3_UNAVAILABLE:
        return f"S3 is unavailable ({code})", True
    if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"access denied ({code})", False
    if code in ("NoSuchBucket", "NoSuchKey", "404"):
        return "not found" if code != "NoSuchBucket" else "bucket not found", False
    return None


def _os_error(exc: BaseException) -> tuple[str, bool] | None:
    if not isinstance(exc, OSError) or isinstance(exc, NstError):
        return None
    if isinstance(exc, FileNotFoundError):
        return "not found", False
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not a file", False
    if isinstance(exc, NotADirectoryError):
        return "part of the path is a file, not a folder", False
    if isinstance(exc, FileExistsError):
        return "already exists", False
    if isinstance(exc, PermissionError):
        return "access denied", False
    if exc.errno in _PERMANENT_ERRNOS:
        return _PERMANENT_ERRNOS[exc.errno], False
    return _plain(exc), True  # another I/O error (EIO on a network file system ...): worth another try


def _plain(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, OSError) else text
