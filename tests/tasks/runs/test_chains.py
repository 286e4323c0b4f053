"""run_chains: clip rows as chains of frames, from lease to the assembled clip; resume, sharing, failures."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image

from nst_core import StepInfo
from tasks.manifest.read import Pair, read_manifest
from tasks.runs import stopping
from tasks.runs.chains import run_chains
from tasks.runs.options import RunOptions
from tasks.storage.records import DONE, LOSSES, PREVIEW, RESULT, SOURCE_PREVIEW, VIDEO, read_losses
from tasks.storage.root import FLOWS, frame_folder
from tests.conftest import make_image
from tests.nst_core.video.samples import smooth_frames, write_mp4

FAST = {"weights": "random:0", "image_size": 32, "iterations": 3, "frame_iterations": 2, "device": "cpu"}
FRAMES = 5


def pairs_of(tmp_path: Path, rows: list[str], **defaults: Any) -> list[Pair]:
    """The pairs of a manifest whose ``rows`` are "content" (in style.png) or "content,style"."""
    make_image(1, (40, 40)).save(tmp_path / "style.png")
    make_image(2, (40, 40)).save(tmp_path / "other.png")
    lines = [row if "," in row else f"{row},style.png" for row in rows]
    (tmp_path / "m.csv").write_text("content,style\n" + "".join(f"{line}\n" for line in lines))
    manifest = read_manifest(str(tmp_path / "m.csv"), FAST | defaults)
    assert manifest.errors == []
    assert all(pair.clip for pair in manifest.pairs)
    return manifest.pairs


def clip(tmp_path: Path, name: str = "clip.mp4", audio: bool = False) -> str:
    write_mp4(str(tmp_path / name), smooth_frames(FRAMES, (32, 24)), fps=12, audio=audio)
    return name


def decoded(path: Path) -> tuple[int, tuple[int, int], Fraction, bool]:
    """(frames, size, rate, has audio) of an encoded clip, decoded."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_image() for frame in container.decode(stream)]
        with av.open(str(path)) as again:
            audio = bool(again.streams.audio)
        return len(frames), frames[0].size, Fraction(stream.average_rate), audio


def test_a_clip_renders_frame_after_frame_and_is_assembled(tmp_path: Path) -> None:
    [pair] = pairs_of(tmp_path, [clip(tmp_path, audio=True)])
    out = tmp_path / "out"
    seen: list[tuple[int, bool]] = []

    def on_step(_: int, step: StepInfo) -> None:  # frame t's first step: is frame t-1 written?
        frame = len(seen) and (step.iteration - 4) // 2 + 1 if step.iteration > 3 else 0
        seen.append((frame, frame == 0 or (out / frame_folder(pair.pair_id, frame - 1) / DONE).exists()))

    [outcome] = run_chains([pair], RunOptions(out=str(out)), on_step=on_step)
    assert outcome.status == "rendered", outcome.reason
    assert all(written for _, written in seen)
    assert [step for step, _ in seen][-1] == FRAMES - 1  # 3 iterations, then 2 per frame, counted on
    folder = out / pair.pair_id
    assert {VIDEO, PREVIEW, SOURCE_PREVIEW, RESULT, LOSSES, DONE} <= {p.name for p in folder.iterdir()}
    assert decoded(folder / VIDEO) == (FRAMES, (32, 24), Fraction(12), True)
    assert decoded(folder / PREVIEW)[0] == FRAMES
    losses = read_losses((folder / LOSSES).read_bytes())
    assert [row.iteration for row in losses] == list(range(FRAMES))
    assert losses[0].temporal == 0 and all(row.temporal > 0 for row in losses[1:])
    assert len(list((out / FLOWS).rglob("*.npz"))) == FRAMES - 1


def test_a_stopped_chain_resumes_at_its_first_unfinished_frame(tmp_path: Path) -> None:
    [pair] = pairs_of(tmp_path, [clip(tmp_path)])
    options, out = RunOptions(out=str(tmp_path / "out")), tmp_path / "out"

    def stop_in_frame_3(_: int, step: StepInfo) -> None:
        if step.iteration == 3 + 2 * 2 + 1:  # frame 0: 3 iterations; frames 1, 2: 2 each; then frame 3
            stopping.request_stop()

    try:
        [outcome] = run_chains([pair], options, on_step=stop_in_frame_3)
    finally:
        stopping.reset()
    assert outcome.status == "cancelled"
    assert "frame 3" in outcome.reason
    done = [(out / frame_folder(pair.pair_id, t) / DONE).exists() for t in range(FRAMES)]
    assert done == [True, True, True, False, False]
    assert not (out / pair.pair_id / DONE).exists()
    before = {t: (out / frame_folder(pair.pair_id, t) / DONE).stat().st_mtime_ns for t in range(3)}
    iterations: list[int] = []
    [outcome] = run_chains([pair], options, on_step=lambda _, step: iterations.append(step.iteration))
    assert outcome.status == "rendered", outcome.reason
    assert iterations[0] == 3 + 2 * 2 + 1 and len(iterations) == 2 * 2  # frames 3 and 4 only
    assert before == {t: (out / frame_folder(pair.pair_id, t) / DONE).stat().st_mtime_ns for t in range(3)}
    assert decoded(out / pair.pair_id / VIDEO)[0] == FRAMES


def test_gifs_and_folders_of_frames_are_clips_and_share_their_flows(tmp_path: Path) -> None:
    frames = smooth_frames(FRAMES, (32, 24))
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    (tmp_path / "frames").mkdir()
    for t, frame in enumerate(frames):
        frame.save(tmp_path / "frames" / f"f{t + 1}.png")  # natural order: f2 before f10
    pairs = pairs_of(tmp_path, ["clip.gif", "frames/", "frames/,other.png"])
    out = tmp_path / "out"
    outcomes = run_chains(pairs, RunOptions(out=str(out), batch_size=3))
    assert [o.status for o in outcomes] == ["rendered"] * 3, [o.reason for o in outcomes]
    for pair in pairs:
        assert decoded(out / pair.pair_id / VIDEO)[:2] == (FRAMES, (32, 24))
    flows = sorted(p.parent.name for p in (out / FLOWS).rglob("*.npz"))
    assert len(flows) == 2 * (FRAMES - 1)  # one set for the gif's (quantised) frames, one for the folder's two styles
    assert len(set(flows)) == 2


def test_a_corrupt_clip_fails_its_row_alone_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.mp4").write_bytes(b"\x00not a video" * 100)
    pairs = pairs_of(tmp_path, ["bad.mp4", clip(tmp_path)])
    outcomes = run_chains(pairs, RunOptions(out=str(tmp_path / "out"), batch_size=2))
    assert [o.status for o in outcomes] == ["failed", "rendered"]
    assert "\n" not in outcomes[0].reason and "bad.mp4" in outcomes[0].reason


@pytest.mark.parametrize("frame_end", [3])
def test_the_frame_selection_and_rate(tmp_path: Path, frame_end: int) -> None:
    [pair] = pairs_of(tmp_path, [clip(tmp_path)], frame_end=frame_end, frame_step=2)
    [outcome] = run_chains([pair], RunOptions(out=str(tmp_path / "out")))
    assert outcome.status == "rendered", outcome.reason
    assert decoded(tmp_path / "out" / pair.pair_id / VIDEO)[::2] == (2, Fraction(6))  # frames 0 and 2, at 12/2 fps
    with Image.open(tmp_path / "out" / pair.pair_id / RESULT) as middle:
        assert middle.size == (32, 24)
