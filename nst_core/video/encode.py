"""Writing clips to local paths (callers copy them to stores atomically): H.264 mp4 results and webm previews.

4:2:0 chroma (``yuv420p``, what every player decodes) needs an even width and height: an odd last row or column is
cropped, never padded, so no invented pixels show. The mp4's index goes first (``+faststart``) so that it plays
while it loads. Previews are VP9 in its realtime mode, measured faster here than VP8 at a third of the size; they
loop because the page's ``<video loop>`` says so (webm has no loop flag).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction

import av
import fsspec
import numpy as np
from PIL import Image

from nst_core.images import long_side_size
from nst_core.video.clips import clip_errors

__all__ = ["MP4_MUXER", "MP4_OPTIONS", "PREVIEW_OPTIONS", "encode_preview", "encode_video", "even_size"]

# Index first; hold packets until every stream has some (0: no time limit), so audio muxed before the video
# still comes out interleaved with it.
MP4_MUXER = {"movflags": "+faststart", "max_interleave_delta": "0"}
MP4_OPTIONS = {"crf": "18", "preset": "medium"}  # crf 18: visually lossless for x264
PREVIEW_OPTIONS = {"crf": "32", "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"}  # constant quality


def encode_video(
    frames: Sequence[Image.Image],
    path: str,
    fps: Fraction,
    audio_from: str | None = None,
    audio_start_s: float = 0.0,
) -> None:
    """Write ``frames`` at ``fps`` (the source's rate) to the local mp4 ``path``: H.264, yuv420p, crf 18; an odd
    last row or column is cropped.

    ``audio_from``: a clip (path or URI) whose audio track, from ``audio_start_s`` for as long as the frames last,
    is re-encoded to AAC alongside; a clip without audio adds none.
    """
    size = even_size(frames)
    with av.open(path, "w", format="mp4", options=MP4_MUXER) as out:
        video = _video_stream(out, "libx264", fps, size, MP4_OPTIONS)
        if audio_from is not None:
            out.mux(_audio_packets(out, audio_from, audio_start_s, float(len(frames) / fps)))
        _write_video(out, video, frames, size)


def encode_preview(frames: Sequence[Image.Image], path: str, fps: Fraction, max_side: int = 320) -> None:
    """Write a small webm (VP9) of ``frames`` to the local ``path``, its long side at most ``max_side`` pixels."""
    width, height = frames[0].size if frames else (0, 0)
    if max(width, height) > max_side:
        small = long_side_size((width, height), max_side)
        frames = [frame.resize(small, Image.Resampling.LANCZOS) for frame in frames]
    size = even_size(frames)
    with av.open(path, "w", format="webm") as out:
        _write_video(out, _video_stream(out, "libvpx-vp9", fps, size, PREVIEW_OPTIONS), frames, size)


def even_size(frames: Sequence[Image.Image]) -> tuple[int, int]:
    """(width, height) of ``frames`` rounded down to even numbers, as yuv420p needs.

    Raises:
        ValueError: no frames, frames of different sizes, or a frame under 2x2 pixels.
    """
    sizes = {frame.size for frame in frames}
    if not sizes:
        raise ValueError("no frames to encode")
    if len(sizes) > 1:
        raise ValueError(f"cannot encode frames of {len(sizes)} sizes ({sorted(sizes)[:3]}); one size is needed")
    (width, height) = sizes.pop()
    if width < 2 or height < 2:
        raise ValueError(f"cannot encode {width}x{height} frames: at least 2x2 pixels are needed")
    return width - width % 2, height - height % 2


def _video_stream(
    out: av.container.OutputContainer, codec: str, fps: Fraction, size: tuple[int, int], options: dict[str, str]
) -> av.VideoStream:
    stream = out.add_stream(codec, rate=Fraction(fps), options=options)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    return stream


def _write_video(
    out: av.container.OutputContainer, stream: av.VideoStream, frames: Sequence[Image.Image], size: tuple[int, int]
) -> None:
    width, height = size
    for index, image in enumerate(frames):
        pixels = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:height, :width])  # (H, W, 3), odd edge cropped
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        frame.pts = index  # in the stream's time base, 1/fps
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))  # flush the encoder's delayed frames


def _audio_packets(out: av.container.OutputContainer, uri: str, start_s: float, duration_s: float) -> list[av.Packet]:
    """``uri``'s first audio track, ``start_s`` to ``start_s + duration_s``, as AAC packets of a new stream of ``out``.

    Raises:
        InputError: ``uri`` cannot be read or decoded (one line naming it).
    """
    packets: list[av.Packet] = []
    with clip_errors(uri, "audio source"), fsspec.open(uri, "rb") as f, av.open(f, "r") as source:
        if not source.streams.audio:
            return packets
        track = source.streams.audio[0]
        rate, layout = track.codec_context.sample_rate, track.codec_context.layout.name
        stream = out.add_stream("aac", rate=rate, layout=layout)
        if start_s > 0:
            source.seek(int(start_s * av.time_base), backward=True)  # to a point at or before start_s
        written = 0
        for samples in _trimmed(source.decode(track), rate, layout, start_s, start_s + duration_s):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, written, Fraction(1, rate)
            written += samples.shape[1]
            packets += stream.encode(frame)
        packets += stream.encode(None)
    return packets


def _trimmed(
    frames: Iterator[av.AudioFrame], rate: int, layout: str, start_s: float, end_s: float
) -> Iterator[np.ndarray]:
    """The samples from ``start_s`` to ``end_s`` as planar float arrays (channels, samples), frame by frame."""
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)  # any sample format to planar float
    first, last, position = round(start_s * rate), round(end_s * rate), None
    for decoded in frames:
        if position is None or decoded.pts is not None:
            position = round((decoded.time or 0.0) * rate)  # where this frame starts, in samples
        for frame in resampler.resample(decoded):
            samples = frame.to_ndarray()  # (channels, samples)
            keep = samples[:, max(first - position, 0) : max(last - position, 0)]
            position += samples.shape[1]
            if keep.shape[1]:
                yield np.ascontiguousarray(keep)
        if position >= last:
            return
