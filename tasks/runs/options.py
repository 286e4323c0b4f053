"""How a manifest is run: ``RunOptions``, the one declaration of the run's knobs.

The ``run`` and ``serve`` commands' flags (``flows.flags``), the ``render_manifest`` flow's parameters
(``flows.render_manifest``) and the deployments' (``deploy/prefect.yaml``, kept equal by a test) are its
fields. A field named ``..._s`` is in seconds; its flag drops the suffix (``timeout_s``: ``--timeout``).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = ["GALLERY_PORT", "MAX_LINK_EXPIRY_S", "RunOptions"]

MAX_LINK_EXPIRY_S = 7 * 24 * 3600  # S3 presigned URLs work 7 days at most
GALLERY_PORT = 8765  # stylebatch gallery --serve
EXECUTOR = re.compile(r"^(local|dask-local|(tcp|dask)://\S+)$")


class RunOptions(BaseModel):
    """What every pair of a run shares, besides its settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    out: str = Field("renders", description="Output root: a path or URI (s3://bucket/prefix).")
    force: bool = Field(False, description="Render pairs again even if they are finished.")
    log_every: int = Field(50, ge=1, description="Log the loss terms every N iterations.")
    timeout_s: float | None = Field(None, gt=0, description="Give up on a pair after this many seconds.")
    retry_for_s: float = Field(
        180,
        ge=0,
        description="Retry transient storage and network errors (connections, timeouts, throttling) for up to this "
        "many seconds, tries included.",
    )
    batch_size: int = Field(
        1,
        ge=1,
        description="Render up to N pairs together on one device: pairs of one network, size, optimiser and "
        "precision (README: Batches).",
    )
    executor: str = Field(
        "local",
        description="local (threads here), dask-local (a Dask cluster here: one worker per GPU) or tcp://HOST:PORT "
        "(an existing Dask scheduler).",
    )
    public_url: str | None = Field(
        None,
        description="Where the output root is served over http(s) (a web server, a CDN, `stylebatch gallery OUT "
        "--serve`): the Prefect UI links to URL/<path under the output root>.",
    )
    link_expiry_s: int = Field(
        MAX_LINK_EXPIRY_S,
        ge=1,
        le=MAX_LINK_EXPIRY_S,
        description="Presigned links to S3 outputs in the Prefect UI work this long (S3 allows 7 days at most).",
    )

    @classmethod
    def of(cls, **values: object) -> RunOptions:
        """Validated options. Raises ``ValueError``: one line naming each bad option and what is wrong."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
            ]
            raise ValueError("; ".join(problems)) from None

    @field_validator("executor")
    @classmethod
    def _check_executor(cls, value: str) -> str:
        if not EXECUTOR.match(value):
            raise ValueError(f"must be local, dask-local or tcp://host:port, not {value!r}")
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        parts = urlsplit(value or "")
        if value is not None and not (parts.scheme in ("http", "https") and parts.netloc):
            raise ValueError(f"must be an http:// or https:// URL, not {value!r}")
        return value
