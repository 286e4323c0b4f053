"""What runs read and write: the output root and its layout (``root``), the pair folder's records
(``records``), pair folders written atomically (``folders``), leases (``leases``), inputs read once per run
(``inputs``), and the retries of transient errors (``retries``, with ``one_try_s3``)."""

from tasks.storage.records import Status
from tasks.storage.root import OutputRoot

__all__ = ["OutputRoot", "Status"]
