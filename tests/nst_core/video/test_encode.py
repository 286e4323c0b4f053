"""Encoding: H.264 mp4 results (even sizes, the source's rate and audio) and small VP9 previews, read back with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from nst_core.errors import InputError
from nst_core.video.encode import encode_preview, encode_video, even_size
from tests.nst_core.video.samples import decode, mean_abs_diff, smooth_frames, write_mp4

FPS = Fraction(12)


@pytest.mark.parametrize(("size", "stored"), [((34, 26), (34, 26)), ((33, 25), (32, 24))], ids=["even", "odd"])
def test_encode_video_round_trip(tmp_path: Path, size: tuple[int, int], stored: tuple[int, int]) -> None:
    source = smooth_frames(6, size)
    path = str(tmp_path / "out.mp4")
    encode_video(source, path, FPS)
    clip = decode(path)
    assert (len(clip.frames), clip.size, clip.rate, clip.codec, clip.audio_s) == (6, stored, FPS, "h264", None)
    w, h = stored
    for got, want in zip(clip.frames, source, strict=True):
        assert mean_abs_diff(got, want.crop((0, 0, w, h))) < 8  # an odd last row and column are cropped


def test_keeps_the_sources_audio(tmp_path: Path) -> None:
    source = tmp_path / "with-audio.mp4"
    write_mp4(str(source), smooth_frames(24, (32, 24)), fps=12, audio=True)  # 2 s of sine
    out = str(tmp_path / "out.mp4")
    encode_video(smooth_frames(6, (32, 24)), out, FPS, audio_from=str(source), audio_start_s=1.0)
    audio_s = decode(out).audio_s
    assert audio_s is not None and abs(audio_s - 0.5) < 0.1  # the clip's 0.5 s, not the source's 2 s


def test_no_audio_track_adds_none(tmp_path: Path) -> None:
    source = tmp_path / "silent.mp4"
    write_mp4(str(source), smooth_frames(4, (32, 24)))
    out = str(tmp_path / "out.mp4")
    encode_video(smooth_frames(4, (32, 24)), out, FPS, audio_from=str(source))
    assert decode(out).audio_s is None
    with pytest.raises(InputError, match=r"^audio source \S+gone\.mp4: not found$"):
        encode_video(smooth_frames(4, (32, 24)), out, FPS, audio_from=str(tmp_path / "gone.mp4"))


def test_preview(tmp_path: Path) -> None:
    path = str(tmp_path / "preview.webm")
    encode_preview(smooth_frames(6, (64, 41)), path, FPS, max_side=32)
    clip = decode(path)
    assert (len(clip.frames), clip.rate, clip.codec) == (6, FPS, "vp9")
    assert max(clip.size) <= 32 and clip.size == (32, 20)  # 64x41 -> 32x21, odd height cropped


def test_even_size_refuses_mixed_or_tiny_frames() -> None:
    with pytest.raises(ValueError, match="2 sizes"):
        even_size([*smooth_frames(1, (8, 8)), *smooth_frames(1, (8, 6))])
    with pytest.raises(ValueError, match="no frames"):
        even_size([])
    with pytest.raises(ValueError, match="1x5 frames"):
        even_size(smooth_frames(1, (1, 5)))
