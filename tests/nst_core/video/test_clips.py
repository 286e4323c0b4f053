"""Clips: header-only probing, frame selection and one-line errors, for videos, GIFs and folders of frames."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image

from nst_core.errors import InputError
from nst_core.video.clips import ClipInfo, FrameRange, is_clip, probe_clip, read_frames
from tests.nst_core.video.samples import mean_abs_diff, smooth_frames, write_mp4


@pytest.fixture
def mp4(tmp_path: Path) -> str:
    path = tmp_path / "clip.mp4"
    write_mp4(str(path), smooth_frames(6, (32, 24)))
    return str(path)


@pytest.fixture
def memory_fs() -> Iterator[fsspec.AbstractFileSystem]:
    fs = fsspec.filesystem("memory")
    fs.mkdir("/video-tests")
    yield fs
    fs.rm("/video-tests", recursive=True)


def write_frames(folder: Path, names: list[str], size: tuple[int, int] = (20, 16)) -> None:
    """PNG frames whose grey level is the number in their name."""
    folder.mkdir()
    for name in names:
        level = int("".join(c for c in name if c.isdigit()))
        Image.new("RGB", size, (level, level, level)).save(folder / name)


def test_is_clip(tmp_path: Path, memory_fs: fsspec.AbstractFileSystem) -> None:
    write_frames(tmp_path / "frames", ["f1.png"])
    (tmp_path / "empty").mkdir()
    memory_fs.pipe("/video-tests/shots/a.jpg", b"not read")
    assert all(is_clip(f"s3://b/x{suffix}") for suffix in (".mp4", ".MOV", ".webm", ".mkv", ".avi", ".gif"))
    assert is_clip(str(tmp_path / "frames")) and is_clip("memory://video-tests/shots")
    assert not is_clip(str(tmp_path / "empty")) and not is_clip(str(tmp_path / "missing"))
    assert not is_clip(str(tmp_path / "frames" / "f1.png"))


def test_probe_mp4_reads_the_header(mp4: str) -> None:
    info = probe_clip(mp4)
    assert info == ClipInfo(6, 32, 24, Fraction(12), 0.5, "h264", has_audio=False)


def test_probe_and_read_on_fsspec_memory(memory_fs: fsspec.AbstractFileSystem) -> None:
    source = smooth_frames(6, (32, 24))
    with memory_fs.open("/video-tests/clip.mp4", "wb") as f:
        write_mp4(f, source, audio=True)  # faststart needs a real path
    uri = "memory://video-tests/clip.mp4"
    info = probe_clip(uri)
    assert (info.frames, info.width, info.height, info.fps, info.has_audio) == (6, 32, 24, 12, True)
    frames = read_frames(uri, FrameRange(1, 5, 2))
    assert [f.size for f in frames] == [(32, 24)] * 2 and {f.mode for f in frames} == {"RGB"}
    assert mean_abs_diff(frames[0], source[1]) < 8 and mean_abs_diff(frames[1], source[3]) < 8
    assert mean_abs_diff(frames[0], source[3]) > 10  # the frames are told apart


def test_animated_gif(tmp_path: Path) -> None:
    source = smooth_frames(5, (30, 20))
    path = tmp_path / "loop.gif"
    source[0].save(path, save_all=True, append_images=source[1:], duration=100, loop=0)
    info = probe_clip(str(path))
    assert (info.frames, info.width, info.height, info.fps, info.codec) == (5, 30, 20, 10, "gif")
    frames = read_frames(str(path), FrameRange())
    assert len(frames) == 5 and all(f.mode == "RGB" and f.size == (30, 20) for f in frames)
    assert mean_abs_diff(frames[4], source[4]) < 12  # a 256-colour palette


def test_folder_frames_in_natural_order(tmp_path: Path) -> None:
    names = [f"frame{n}.png" for n in (10, 2, 1, 33, 3)]
    write_frames(tmp_path / "shots", names)
    (tmp_path / "shots" / "notes.txt").write_text("not a frame")
    info = probe_clip(str(tmp_path / "shots"))
    assert info == ClipInfo(5, 20, 16, Fraction(24), 5 / 24, "png frames", has_audio=False)
    frames = read_frames(str(tmp_path / "shots"), FrameRange(step=1))
    assert [f.getpixel((0, 0))[0] for f in frames] == [1, 2, 3, 10, 33]
    assert [f.getpixel((0, 0))[0] for f in read_frames(str(tmp_path / "shots"), FrameRange(1, None, 2))] == [2, 10]


def test_bad_folder_frames(tmp_path: Path) -> None:
    write_frames(tmp_path / "shots", ["a1.png"])
    Image.new("RGB", (8, 8)).save(tmp_path / "shots" / "a2.png")
    (tmp_path / "shots" / "a3.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"shots: frame 1 \(a2\.png\) is 8x8 px, the first is 20x16$"):
        read_frames(str(tmp_path / "shots"), FrameRange())
    with pytest.raises(InputError, match=r"shots: frame 2 \(a3\.png\): not an image Pillow can read$"):
        read_frames(str(tmp_path / "shots"), FrameRange(2))
    (tmp_path / "shots" / "a1.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"shots: frame 0 \(a1\.png\): not an image Pillow can read$"):
        probe_clip(str(tmp_path / "shots"))


def test_frame_range() -> None:
    assert FrameRange().indices(4) == range(4)
    assert list(FrameRange(1, 8, 3).indices(6)) == [1, 4]
    assert not FrameRange(7).indices(6)
    with pytest.raises(ValueError, match="step >= 1"):
        FrameRange(step=0)


def test_selection_over_max_frames_or_empty(mp4: str) -> None:
    with pytest.raises(InputError, match=r"selects 6 frames, over the limit of 4 \(setting max_frames") as error:
        read_frames(mp4, FrameRange(), max_frames=4)
    assert mp4 in str(error.value)
    assert len(read_frames(mp4, FrameRange(0, 4), max_frames=4)) == 4
    with pytest.raises(InputError, match="frames 9 to the end selects no frames of its 6"):
        read_frames(mp4, FrameRange(9))


def one_line(error: pytest.ExceptionInfo[InputError], uri: str) -> str:
    text = str(error.value)
    assert "\n" not in text and "Traceback" not in text and "Errno" not in text
    assert text.startswith(f"content clip {uri}: ")
    return text.removeprefix(f"content clip {uri}: ")


def test_corrupt_and_missing_clips(tmp_path: Path) -> None:
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(InputError) as error:
        probe_clip(str(noise), role="content clip")
    assert one_line(error, str(noise)) == "not a readable video (Invalid data found when processing input)"
    with pytest.raises(InputError) as error:
        read_frames(str(tmp_path / "gone.mp4"), FrameRange(), role="content clip")
    assert one_line(error, str(tmp_path / "gone.mp4")) == "not found"


@pytest.mark.parametrize("faststart", [False, True], ids=["index-at-end", "index-first"])
def test_truncated_clip(tmp_path: Path, faststart: bool) -> None:
    """Cut in half: with its index at the end the header is gone; with it first, decoding stops part-way."""
    rng = np.random.default_rng(1)
    noisy = [Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)) for _ in range(12)]
    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    write_mp4(str(whole), noisy, faststart=faststart)
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(InputError) as error:
        read_frames(str(cut), FrameRange(), role="content clip")
    cause = one_line(error, str(cut))
    if faststart:
        assert cause.startswith("truncated: decoding stopped after ") and cause.endswith(" of 12 frames")
        assert len(read_frames(str(cut), FrameRange(0, 2))) == 2  # frames before the cut still decode
    else:
        assert cause == "not a readable video (Invalid data found when processing input)"
