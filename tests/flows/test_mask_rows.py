"""Rows whose styles are placed by masks, through validate and the flow: good rows render with their masks
recorded, bad masks fail their own row with one line, and rows without masks keep their ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flows.render_manifest import render_manifest
from nst_core.images import resize_long_side
from tasks.manifest.read import read_manifest
from tasks.manifest.validate import validate
from tasks.storage.records import RECORD, RESULT
from tests.flows.helpers import FAST, Tiny
from tests.nst_core.video.samples import smooth_frames, write_mp4

pytestmark = pytest.mark.usefixtures("prefect_api")


def write_masks(root: Path) -> None:
    """left/right halves and a centre box of a 40x32 content, a top half of a 36x36 style, a square (wrong shape),
    and a sliver that an inside-mode mask loses at the deepest layer."""
    left = np.zeros((32, 40), np.uint8)
    left[:, :20] = 255
    keep = np.zeros((32, 40), np.uint8)
    keep[8:24, 10:30] = 255
    top = np.zeros((36, 36), np.uint8)
    top[:18] = 255
    sliver = np.zeros((32, 40), np.uint8)
    sliver[:, :2] = 255
    for name, pixels in {"left": left, "right": 255 - left, "keep": keep, "top": top, "sliver": sliver}.items():
        Image.fromarray(pixels).save(root / f"{name}.png")
    Image.new("L", (30, 30), 255).save(root / "square.png")


def test_masked_rows_render_and_bad_masks_fail_their_row_alone(tiny: Tiny, tmp_path: Path) -> None:
    (content, _), (style1, style2) = tiny.images(2, 2)
    write_masks(tiny.root)
    write_mp4(str(tiny.root / "clip.mp4"), smooth_frames(2, (40, 32)))
    header = "content,style,style_masks,style_image_masks,keep_mask,mask_mode"
    manifest = tiny.manifest(
        "\n".join(
            [
                header,
                f"{content},{style1}|{style2},left.png|right.png,|top.png,,",  # row 2: two regions
                f"{content},{style1},,,keep.png,",  # row 3: kept pixels
                f"{content},{style1},,,,",  # row 4: no masks
                f"{content},{style1},square.png,,,",  # row 5: the wrong shape
                f"{content},{style1},nowhere.png,,,",  # row 6: no such file
                f"{content},{style1},sliver.png,,,inside",  # row 7: nothing left at relu5_1
                f"{content},{style1}|{style2},left.png,,,",  # row 8: one mask for two styles
                f"clip.mp4,{style1}|{style2},left.png|right.png,,,",  # row 9: a clip's frames
            ]
        )
        + "\n"
    )
    base = tiny.root.resolve()
    found = [str(problem) for problem in validate(read_manifest(str(manifest), FAST))]
    assert found == [
        f"row 5, column style_masks: style mask 1 {base}/square.png is 30x30 px, not the aspect ratio of its image "
        "(40x32 px)",
        f"row 6, column style_masks: style mask 1 {base}/nowhere.png: not found",
        f"row 7, column style_masks: style mask 1 {base}/sliver.png is empty at layer relu5_1 at 32 px (mode inside): "
        "nothing there to style; use a larger region, image_size or start_size, or mask_mode simple",
        "row 8, column style_masks: 1 masks for 2 styles: give one per style",
    ]

    out = tmp_path / "out"
    state = render_manifest(str(manifest), out=str(out), defaults=FAST | {"frame_iterations": 1}, return_state=True)
    summary = state.result(raise_on_failure=False)
    status = {row.row: (row.status, row.reason) for row in summary.pairs}
    assert {row: s for row, (s, _) in status.items()} == {
        2: "rendered",
        3: "rendered",
        4: "rendered",
        5: "failed",
        6: "failed",
        7: "failed",
        8: "failed",
        9: "rendered",
    }, status
    assert "style mask 1" in status[5][1] and "aspect ratio" in status[5][1] and "\n" not in status[5][1]
    assert "nowhere.png: not found" in status[6][1]
    assert "is empty at layer relu5_1" in status[7][1]

    ids = {row.row: row.id for row in summary.pairs}
    record = json.loads((out / ids[2] / RECORD).read_text())
    assert sorted(record["masks"]) == ["style image mask 2", "style mask 1", "style mask 2"]
    assert record["masks"]["style image mask 2"]["uri"] == f"{base}/top.png"
    assert all(len(mask["sha256"]) == 64 for mask in record["masks"].values())

    kept = np.asarray(Image.open(out / ids[3] / RESULT))
    original = np.asarray(resize_long_side(Image.open(tiny.root / content).convert("RGB"), FAST["image_size"]))
    box = np.asarray(Image.open(tiny.root / "keep.png").resize(kept.shape[1::-1])) >= 128
    assert np.array_equal(kept[box], original[box])
    assert not np.array_equal(kept, original)

    plain = read_manifest(str(tiny.manifest(f"content,style\n{content},{style1}\n", "plain.csv")), FAST)
    assert ids[4] == plain.pairs[0].pair_id  # mask columns in a manifest change no unmasked row's id
