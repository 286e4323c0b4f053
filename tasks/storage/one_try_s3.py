"""s3fs's filesystem with its own retries off: ``tasks.storage.retries`` registers it for ``s3://``."""

from __future__ import annotations

import s3fs

__all__ = ["S3FileSystem"]


class S3FileSystem(s3fs.S3FileSystem):
    """Each call tried once by s3fs (its default is 5, each of botocore's own tries, which are switched off
    through fsspec's configuration)."""

    retries = 1
