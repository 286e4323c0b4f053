"""Running a manifest's pairs: the run's knobs (``options``), checks before it starts (``checks``), pairs from
lease to outputs (``pairs``), failures in words (``failures``), devices, stopping and progress events, and what
a run reports (``records``: outcomes and the summary; ``report`` and ``links``: the Prefect UI's artifacts).
Only ``RunOptions`` is exported here: the command line reads it before anything heavier is imported."""

from tasks.runs.options import RunOptions

__all__ = ["RunOptions"]
