"""Unusual inputs through the real commands: every pixel mode renders as its picture or fails in one line, and
``validate`` reports exactly the rows that ``run`` then fails before rendering."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from tests.faults.faults_helpers import STYLEBATCH, start
from tests.flows.helpers import Tiny
from tests.pixel_modes import SIZE, mode_files

# The result is the content image itself: no style or TV term, so a zero gradient from the content init.
UNCHANGED = ["--weights", "random:0", "--image-size", str(max(SIZE)), "--iterations", "1"]
UNCHANGED += ["--style-weight", "0", "--tv-weight", "0"]


def test_every_mode_renders_as_its_picture_and_validate_fails_what_run_fails(
    tiny: Tiny, tmp_path: Path, harness_env: dict[str, str]
) -> None:
    files = mode_files()
    for file in files:
        (tmp_path / file.name).write_bytes(file.data)
    (_,), (style,) = tiny.images(1, 1)
    tiny.make_image(7, (100, 10)).save(tmp_path / "wide.png")
    rows = [f"{file.name.replace('.', '-')},{file.name},{style}," for file in files]
    rows += [f"wide,wide.png,{style},", f"tiny-style,{files[1].name},{style},0.2"]  # 32x3 px; the style at 6x6 px
    manifest = tiny.manifest("\n".join(["id,content,style,style_scale", *rows]) + "\n")

    validate = subprocess.run(
        [STYLEBATCH, "validate", str(manifest), *UNCHANGED], env=harness_env, capture_output=True, text=True
    )
    assert validate.returncode == 1, validate.stderr
    reported = {int(m[1]) for m in re.finditer(r"^row (\d+), column \w+: ", validate.stdout, re.MULTILINE)}

    run = start("run", str(manifest), "--out", str(tmp_path / "out"), *UNCHANGED, env=harness_env, cwd=tmp_path)
    assert run.wait() == 1, run.stderr
    ended = dict(re.findall(r"^row (\d+) [^:]+: (.*)$", run.stderr, re.MULTILINE))
    failed = {row: reason for row, reason in ended.items() if not reason.startswith("rendered in ")}
    expected_failures = {
        "int32-negative-tif": "(mode I)",
        "float32-0-255-tif": "(mode F)",
        "wide": "32x3 px",
        "tiny-style": "6x6 px",
    }
    assert {int(row) for row in failed} == reported  # nothing more, nothing less
    ids = [row.split(",")[0] for row in rows]
    assert {ids[int(row) - 2]: reason for row, reason in failed.items()}.keys() == expected_failures.keys()
    for row, reason in failed.items():
        assert expected_failures[ids[int(row) - 2]] in reason
        assert "\n" not in reason and "Traceback" not in reason

    for file in files:
        if file.picture is None:
            continue
        result = np.asarray(Image.open(tmp_path / "out" / file.name.replace(".", "-") / "result.png"), dtype=np.int16)
        assert np.abs(result - file.picture.astype(np.int16)).max() <= file.tolerance, file.name
