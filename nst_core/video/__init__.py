"""Video: reading clips (``clips``), writing them (``encode``), optical flow and its reliability (``flow``), warping a
frame along a flow (``warp``), and rendering a clip as a chain of frames (``chain``). Plain modules; import them by
name (``nst_core.video.clips``): this one imports nothing heavy, so that manifests can tell clips from stills."""

from __future__ import annotations

from pathlib import PurePosixPath

__all__ = ["VIDEO_SUFFIXES", "looks_like_clip"]

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".gif")


def looks_like_clip(uri: str) -> bool:
    """A clip by its name alone: a video file's extension, or a folder of frames written with a trailing ``/``."""
    return uri.endswith("/") or PurePosixPath(uri.split("?")[0]).suffix.lower() in VIDEO_SUFFIXES
