"""Reading clips through fsspec: a video file (PyAV) or a folder of image frames, probed from headers only.

A folder's frames are its image files in natural order (``frame2`` before ``frame10``), all of one size, at
``FOLDER_FPS`` unless told otherwise. Every problem with a clip is one ``InputError`` line naming the clip and the
cause in words, e.g. ``content clip s3://b/x.mp4: not a readable video (Invalid data found when processing
input)``; only a storage failure worth retrying (timeout, throttling) stays a transient ``StorageError``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import PurePosixPath

import av
import fsspec
from PIL import Image, UnidentifiedImageError

from nst_core.errors import InputError, StorageError
from nst_core.images import decode_image
from nst_core.io_errors import describe
from nst_core.video import VIDEO_SUFFIXES

__all__ = [
    "FOLDER_FPS",
    "FRAME_SUFFIXES",
    "VIDEO_SUFFIXES",
    "ClipInfo",
    "FrameRange",
    "clip_errors",
    "is_clip",
    "probe_clip",
    "read_frames",
    "selected",
]

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
FOLDER_FPS = Fraction(24)


@dataclass(frozen=True)
class ClipInfo:
    """What a clip's header says; ``frames`` is estimated from duration x rate where the container has no count."""

    frames: int
    width: int
    height: int
    fps: Fraction
    duration_s: float
    codec: str  # FFmpeg's decoder name ("h264", "gif"), or "png frames" for a folder
    has_audio: bool


@dataclass(frozen=True)
class FrameRange:
    """Frames ``start``, ``start + step``, ... before ``end`` (exclusive; None: to the clip's end), like a slice."""

    start: int = 0
    end: int | None = None
    step: int = 1

    def __post_init__(self) -> None:
        if self.start < 0 or (self.end is not None and self.end < 0) or self.step < 1:
            raise ValueError(f"frame range {self}: start and end must be >= 0 and step >= 1")

    def indices(self, total: int) -> range:
        """The frame numbers selected from a clip of ``total`` frames."""
        return range(total)[self.start : self.end : self.step]

    def describe(self) -> str:
        end = "the end" if self.end is None else f"frame {self.end}"
        return f"frames {self.start} to {end}" + (f" every {self.step}" if self.step > 1 else "")


def is_clip(uri: str) -> bool:
    """A video file by its extension, or an existing folder (path or URI) holding image frames.

    Raises:
        InputError, StorageError: a folder that cannot be listed (no access; transient: network).
    """
    suffix = PurePosixPath(uri.rstrip("/")).suffix.lower()
    if suffix in VIDEO_SUFFIXES or suffix in FRAME_SUFFIXES:  # a file: no need to ask the store
        return suffix in VIDEO_SUFFIXES
    fs, path = fsspec.url_to_fs(uri)
    with clip_errors(uri, "clip"):
        return fs.isdir(path) and bool(_frame_files(fs, path))


def probe_clip(uri: str, *, role: str = "clip", folder_fps: Fraction = FOLDER_FPS) -> ClipInfo:
    """Frame count, size, rate and codec from the container's header (or a folder's first frame's), nothing decoded.

    Raises:
        InputError: missing, not a video, truncated header, unsupported codec, no frames.
    """
    with clip_errors(uri, role):
        info = _probe_folder(uri, folder_fps) if _is_folder(uri) else _probe_video(uri)
    if info.frames < 1:
        raise InputError(f"{role} {uri}: no frames")
    return info


def read_frames(
    uri: str,
    frames: FrameRange,
    max_frames: int | None = None,
    *,
    role: str = "clip",
    folder_fps: Fraction = FOLDER_FPS,
) -> list[Image.Image]:
    """The selected frames as RGB images, decoding no further than the last one selected.

    Raises:
        InputError: the selection is empty or over ``max_frames``, or the clip cannot be decoded (says at which frame).
    """
    info = probe_clip(uri, role=role, folder_fps=folder_fps)
    wanted = selected(info, frames, max_frames, uri, role)
    with clip_errors(uri, role):
        if _is_folder(uri):
            return _read_folder(uri, wanted, info, role)
        return _read_video(uri, wanted, info, role, to_end=frames.end is None)


def selected(info: ClipInfo, frames: FrameRange, max_frames: int | None, uri: str, role: str = "clip") -> range:
    """The frame numbers ``frames`` selects from the clip ``info`` describes.

    Raises:
        InputError: the selection is empty or over ``max_frames``.
    """
    wanted = frames.indices(info.frames)
    if not wanted:
        raise InputError(f"{role} {uri}: {frames.describe()} selects no frames of its {info.frames}")
    if max_frames is not None and len(wanted) > max_frames:
        raise InputError(
            f"{role} {uri}: {frames.describe()} selects {len(wanted)} frames, over the limit of {max_frames} "
            "(setting max_frames; or select fewer with frame_start, frame_end, frame_step)"
        )
    return wanted


def _probe_video(uri: str) -> ClipInfo:
    with fsspec.open(uri, "rb") as f, av.open(f, "r") as container:
        if not container.streams.video:
            raise InputError("no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise InputError("unsupported codec (no decoder for it in this FFmpeg build)")
        fps = Fraction(stream.average_rate or stream.guessed_rate or 0)
        if fps <= 0:
            raise InputError("no frame rate in the header")
        duration = _duration_s(stream, container)
        frames = stream.frames or round(duration * fps)
        codec = stream.codec_context
        duration = duration or float(frames / fps)
        return ClipInfo(frames, codec.width, codec.height, fps, duration, codec.name, bool(container.streams.audio))


def _duration_s(stream: av.video.stream.VideoStream, container: av.container.InputContainer) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration is not None else 0.0


def _probe_folder(uri: str, fps: Fraction) -> ClipInfo:
    fs, path = fsspec.url_to_fs(uri)
    files = _frame_files(fs, path)
    if not files:
        raise InputError(f"no image frames ({', '.join(FRAME_SUFFIXES)})")
    try:
        with fs.open(files[0], "rb") as f, Image.open(f) as first:  # reads the header only
            (width, height), kind = first.size, (first.format or "image").lower()
    except UnidentifiedImageError as exc:  # before OSError: not a storage error worth retrying
        raise InputError(f"frame 0 ({PurePosixPath(files[0]).name}): not an image Pillow can read") from exc
    return ClipInfo(len(files), width, height, fps, float(len(files) / fps), f"{kind} frames", has_audio=False)


def _read_video(uri: str, wanted: range, info: ClipInfo, role: str, *, to_end: bool) -> list[Image.Image]:
    """Decode from the first frame up to ``wanted``'s last; a clip ending early is truncated unless its count was
    only estimated and the selection runs to its end."""
    chosen, last, index = set(wanted), wanted[-1], -1
    out: list[Image.Image] = []
    with fsspec.open(uri, "rb") as f, av.open(f, "r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        exact = stream.frames > 0
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index in chosen:
                    out.append(frame.to_image())  # RGB
                if index >= last:
                    return out
        except av.FFmpegError as exc:
            raise InputError(f"{role} {uri}: cannot decode frame {index + 1} of {info.frames} ({_words(exc)})") from exc
    if to_end and not exact and out:
        return out
    raise InputError(f"{role} {uri}: truncated: decoding stopped after {index + 1} of {info.frames} frames")


def _read_folder(uri: str, wanted: range, info: ClipInfo, role: str) -> list[Image.Image]:
    fs, path = fsspec.url_to_fs(uri)
    files = _frame_files(fs, path)
    out = []
    for index in wanted:
        where, name = f"{role} {uri}: frame {index}", f"({PurePosixPath(files[index]).name})"
        image = decode_image(fs.cat_file(files[index]), name, where)  # errors read "<where> <name>: <cause>"
        if image.size != (info.width, info.height):
            size, first = "x".join(map(str, image.size)), f"{info.width}x{info.height}"
            raise InputError(f"{where} {name} is {size} px, the first is {first}")
        out.append(image)
    return out


def _is_folder(uri: str) -> bool:
    fs, path = fsspec.url_to_fs(uri)
    return PurePosixPath(path).suffix.lower() not in VIDEO_SUFFIXES and fs.isdir(path)


def _frame_files(fs: fsspec.AbstractFileSystem, path: str) -> list[str]:
    """Image files directly in ``path``, in natural order."""
    names = [p for p in fs.ls(path, detail=False) if p.lower().endswith(FRAME_SUFFIXES)]
    return sorted(names, key=_natural_key)


def _natural_key(path: str) -> list[str | int]:
    """``frame2`` before ``frame10``: digit runs compare as numbers (they alternate with text, so types match)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", PurePosixPath(path).name)]


@contextmanager
def clip_errors(uri: str, role: str = "clip") -> Iterator[None]:
    """Any failure inside as one line: ``InputError`` ("<role> <uri>: <cause>"), or a transient ``StorageError``."""
    try:
        yield
    except InputError as exc:
        if str(exc).startswith(f"{role} {uri}: "):
            raise
        raise InputError(f"{role} {uri}: {exc}") from exc
    except StorageError as exc:
        if exc.transient:
            raise
        raise InputError(f"{role} {uri}: {exc.cause}") from exc
    except av.FFmpegError as exc:
        raise InputError(f"{role} {uri}: not a readable video ({_words(exc)})") from exc
    except (OSError, UnidentifiedImageError, ValueError) as exc:  # fsspec backends, Pillow on a bad first frame
        found = describe(exc)
        if found is not None and found[1]:
            raise StorageError(role, uri, found[0], transient=True) from exc
        raise InputError(f"{role} {uri}: {found[0] if found else _words(exc)}") from exc


def _words(exc: BaseException) -> str:
    """An error's message without its errno or file name: FFmpeg's own words where it has them."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())  # one line
