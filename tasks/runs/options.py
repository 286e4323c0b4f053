"""What every pair of a run shares, and the run's defaults: one home for the CLI, the flow and deployments."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BATCH_SIZE",
    "EXECUTOR",
    "GALLERY_PORT",
    "LINK_EXPIRY_S",
    "LOG_EVERY",
    "MAX_LINK_EXPIRY_S",
    "OUT",
    "RETRY_FOR_S",
    "RunOptions",
]

OUT = "renders"  # output root
LOG_EVERY = 50  # log the loss terms every N iterations
EXECUTOR = "local"  # see flows.executors
RETRY_FOR_S = 180.0  # retry transient storage and network errors this long
BATCH_SIZE = 1  # pairs optimised together on one device (nst_core.render_batch)
MAX_LINK_EXPIRY_S = 7 * 24 * 3600  # S3 presigned URLs work 7 days at most
LINK_EXPIRY_S = MAX_LINK_EXPIRY_S  # how long the Prefect UI's presigned links work
GALLERY_PORT = 8765  # stylebatch gallery --serve


@dataclass(frozen=True)
class RunOptions:
    """What every pair of a run shares."""

    out: str  # output root, a path or URI
    run: str = "run"  # the run's key: inputs are fetched once per run
    timeout_s: float | None = None  # give up on a pair after this long
    retry_for_s: float = RETRY_FOR_S  # keep retrying transient storage errors this long
    force: bool = False  # render even if finished
    batch_size: int = BATCH_SIZE  # pairs of one nst_core.batch_key rendered together
