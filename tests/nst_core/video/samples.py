"""Tiny frames and clips for the video tests; clips written with PyAV itself, not with ``nst_core.video.encode``."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

import av
import cv2
import numpy as np
from PIL import Image

SAMPLE_RATE = 22050
SHIFT = (3, 2)  # in shifted_pair, content moves 3 px right and 2 px down from frame a to frame b


def smooth_frames(count: int, size: tuple[int, int] = (32, 24), seed: int = 0) -> list[Image.Image]:
    """Smooth colour gradients drifting a little from frame to frame, each frame different."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, 3)
    frames = []
    for i in range(count):
        channels = [np.sin(2 * np.pi * (x + 0.7 * y) + p + 0.4 * i) for p in phase]
        pixels = 127.5 + 90 * np.stack(channels, axis=-1)
        frames.append(Image.fromarray(pixels.round().astype(np.uint8), "RGB"))
    return frames


def write_mp4(
    target: str | BinaryIO,
    frames: list[Image.Image],
    fps: int = 12,
    *,
    audio: bool = False,
    faststart: bool = False,
) -> None:
    """H.264 yuv420p mp4 of ``frames`` (even sizes); ``audio``: a 440 Hz sine as long as the video, AAC."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(target, "w", format="mp4", options=options) as out:
        video = out.add_stream("libx264", rate=Fraction(fps))
        video.width, video.height = frames[0].size
        video.pix_fmt = "yuv420p"
        sound = out.add_stream("aac", rate=SAMPLE_RATE) if audio else None
        for frame in frames:
            out.mux(video.encode(av.VideoFrame.from_image(frame)))
        out.mux(video.encode(None))
        if sound is not None:
            out.mux(sound.encode(sine(len(frames) / fps)))
            out.mux(sound.encode(None))


def sine(seconds: float, hz: float = 440.0) -> av.AudioFrame:
    """One mono float frame of a sine wave."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    frame = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)[None], "flt", "mono")
    frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, 0, Fraction(1, SAMPLE_RATE)
    return frame


@dataclass(frozen=True)
class Decoded:
    """A clip decoded with PyAV: its frames as (H, W, 3) uint8 RGB and what its header says."""

    frames: list[np.ndarray]
    size: tuple[int, int]
    rate: Fraction
    codec: str
    audio_s: float | None  # the audio track's duration; None without one


def decode(path: str) -> Decoded:
    with av.open(path) as clip:
        stream = clip.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in clip.decode(stream)]
        audio = clip.streams.audio[0] if clip.streams.audio else None
        audio_s = float(audio.duration * audio.time_base) if audio is not None else None
        size = (stream.codec_context.width, stream.codec_context.height)
        return Decoded(frames, size, Fraction(stream.average_rate), stream.codec_context.name, audio_s)


def mean_abs_diff(a: np.ndarray | Image.Image, b: np.ndarray | Image.Image) -> float:
    """Mean absolute difference in grey levels (0-255) of two RGB pictures of one size."""
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


def texture(size: int, seed: int = 0) -> np.ndarray:
    """Gaussian-blurred colour noise stretched to 0-255: smooth, but textured everywhere."""
    noise = np.random.default_rng(seed).uniform(0, 1, (size, size, 3)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return ((noise - noise.min()) / (noise.max() - noise.min()) * 255).round().astype(np.uint8)


def shifted_pair(size: int = 64, margin: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Frames a and b with b(p + SHIFT) = a(p), cut from one larger texture."""
    big = texture(size + 2 * margin)
    dx, dy = SHIFT
    a = big[margin : margin + size, margin : margin + size]
    b = big[margin - dy : margin - dy + size, margin - dx : margin - dx + size]
    return np.ascontiguousarray(a), np.ascontiguousarray(b)
