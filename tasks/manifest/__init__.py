"""Manifests: CSV rows read into pairs (``read``), folders crossed into manifests (``cross``), and every check
``run`` makes before it renders (``validate``)."""

from tasks.manifest.read import Manifest, Pair, RowError, read_manifest

__all__ = ["Manifest", "Pair", "RowError", "read_manifest"]
