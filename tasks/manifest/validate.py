"""What ``stylebatch validate`` checks without rendering: every check ``run`` applies before it renders.

Every row's settings; each input read and decoded once, however many rows use it (in parallel:
inputs may be remote); each content and style image's size at every level of its row's render
(``nst_core.checks``); each mask's aspect ratio and what is left of it at the deepest style layer
(``nst_core.masks``); the device; each distinct weights value once: a file must hold a state dict
that fits its backbone, ``imagenet`` must be in the Torch hub cache or its download host must
answer. RowErrors that several rows share are reported once, with the list of rows.
"""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from nst_core import NstError, StorageError
from nst_core.catalogue import NETWORKS, RANDOM_WEIGHTS, imagenet_cache_path
from nst_core.checks import Size, size_problem
from nst_core.images import decode_image, read_bytes
from nst_core.io_errors import describe
from nst_core.masks import mask_problem, shape_problem
from nst_core.settings import INIT_MODES
from tasks.manifest.read import Manifest, Pair, RowError
from tasks.runs.devices import gpu_count

__all__ = ["check_weights", "validate"]

DOWNLOAD_CHECK_TIMEOUT_S = 10
_MASK_COLUMNS = {"style mask": "style_masks", "style image mask": "style_image_masks", "keep mask": "keep_mask"}


def validate(manifest: Manifest) -> list[RowError]:
    """Every problem of ``manifest``, in file order; problems shared by rows once, with their rows."""
    found: dict[tuple[str, str], list[int]] = {}
    for error in manifest.errors:
        found.setdefault((error.column, error.reason), []).append(error.row)
    pairs = sorted([*manifest.pairs, *manifest.rejected], key=lambda p: p.row)
    uses = [(pair, column, check) for pair in pairs for column, check in _uses(pair)]
    checks = list(dict.fromkeys(check for *_, check in uses))
    uris = list(dict.fromkeys(check[1] for check in checks if check[0] in ("image", "mask")))
    with ThreadPoolExecutor(max_workers=8) as pool:  # inputs may be remote: overlap the reads
        blobs = dict(zip(uris, pool.map(_fetch, uris), strict=True))
        results = dict(zip(checks, pool.map(lambda check: _check(check, blobs), checks), strict=True))
    for pair, column, check in uses:
        on = results.get(check[4]) if check[0] == "mask" else None
        if (reason := _reason(pair, column, check, results[check], on)) is not None:
            found.setdefault((column, reason), []).append(pair.row)
    for pair in pairs:
        if (reason := _device_problem(pair.settings.device)) is not None:
            found.setdefault(("device", reason), []).append(pair.row)
    problems = [RowError(tuple(sorted(set(rows))), column, reason) for (column, reason), rows in found.items()]
    return sorted(problems, key=lambda p: p.rows[0])  # stable: within a row, settings first, then inputs


def _uses(pair: Pair) -> Iterable[tuple[str, tuple]]:
    """(column, check) for each input and the weights of ``pair``; a mask's check names the check of the image
    it lies on."""
    limit, s = str(pair.settings.max_pixels), pair.settings
    if pair.clip:
        frames = (str(s.frame_start), str(s.frame_end or ""), str(s.frame_step), str(s.max_frames))
        content = ("clip", pair.content, "content clip", *frames)
    else:
        content = ("image", pair.content, "content image", limit)
    yield "content", content
    styles = [("image", uri, "style image", limit) for uri in pair.styles]
    yield from (("style", style) for style in styles)
    for role, uri in pair.masks.items():
        column, on = _MASK_COLUMNS[role.rstrip("0123456789 ")], content
        if column == "style_image_masks":
            on = styles[int(role.rsplit(" ", 1)[1]) - 1]
        yield column, ("mask", uri, role, limit, on)
    if pair.settings.init not in INIT_MODES:
        yield "init", ("image", pair.settings.init, "init image", limit)
    yield "weights", ("weights", pair.settings.backbone, pair.settings.weights)


def _fetch(uri: str) -> bytes | StorageError:
    try:
        return read_bytes(uri, "input")
    except StorageError as exc:
        return exc


def _check(check: tuple, blobs: dict[str, bytes | StorageError]) -> Size | Image.Image | str | None:
    """What ``check`` found: an image's size (a mask's image), or why it fails (None: weights that load)."""
    if check[0] == "weights":
        return check_weights(*check[1:])
    if check[0] == "clip":
        return _check_clip(*check[1:])
    kind, uri, role, limit = check[:4]
    data = blobs[uri]
    try:
        if isinstance(data, StorageError):
            raise data.as_(role)
        image = decode_image(data, uri, role, max_pixels=int(limit))
    except NstError as exc:
        return str(exc)
    return image if kind == "mask" else image.size


def _check_clip(uri: str, role: str, start: str, end: str, step: str, max_frames: str) -> Size | str:
    """A clip's frame size from its header, or why it cannot be used (unreadable, nothing or too much selected)."""
    from nst_core.video.clips import FrameRange, probe_clip, selected  # PyAV: only for manifests with clips

    try:
        info = probe_clip(uri, role=role)
        selected(info, FrameRange(int(start), int(end) if end else None, int(step)), int(max_frames), uri, role)
    except NstError as exc:
        return str(exc)
    return info.width, info.height


def _reason(pair: Pair, column: str, check: tuple, found: Size | Image.Image | str | None, on: object) -> str | None:
    """Why ``check`` fails for ``pair``: its own reason, or (a content or style image that decodes) its size
    at the pair's levels, or (a mask that decodes, on an image of size ``on``) its shape, as the render checks
    them before it starts."""
    if isinstance(found, Image.Image):
        if not isinstance(on, tuple):
            return None  # its image's own problem is reported
        style, keep = column == "style_image_masks", column == "keep_mask"
        problem = shape_problem(found.size, on) if keep else mask_problem(found, on, style, pair.settings)
        return None if problem is None else f"{check[2]} {check[1]} {problem}"
    if not isinstance(found, tuple):
        return found
    if column not in ("content", "style") or (problem := size_problem(found, column == "style", pair.settings)) is None:
        return None
    return f"{check[2]} {check[1]} {problem}"


def _device_problem(device: str) -> str | None:
    """Why ``device`` cannot render here, as ``run`` finds out (on a machine with GPUs every render gets one,
    ``tasks.runs.devices``)."""
    if device in ("auto", "cpu") or gpu_count() > 0 or (device == "mps" and sys.platform == "darwin"):
        return None
    return f"{device} was asked for but is not available here"


def check_weights(backbone: str, weights: str) -> str | None:
    """Why ``weights`` cannot be loaded for ``backbone``, or None if they can (as ``run`` would load them)."""
    if RANDOM_WEIGHTS.match(weights):
        return None
    if weights == "imagenet":
        return _check_imagenet(backbone)
    from nst_core.backbones import load_backbone  # torch: only for manifests naming weights files

    try:
        load_backbone(backbone, weights, "max", "cpu")
    except NstError as exc:
        return str(exc)
    return None


def _check_imagenet(backbone: str) -> str | None:
    cached = imagenet_cache_path(backbone)
    if cached.is_file() and cached.stat().st_size > 0:
        return None
    url = NETWORKS[backbone].imagenet_url
    try:  # urllib, as torch.hub downloads, with the proxies set now (urlopen keeps those of its first use)
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.build_opener().open(request, timeout=DOWNLOAD_CHECK_TIMEOUT_S):
            return None
    except Exception as exc:
        cause = (describe(exc) or (str(exc), False))[0]
        return (
            f"weights imagenet: {cached.name} is not in the Torch hub cache ({cached.parent}) and cannot be "
            f"downloaded from {url}: {cause}. Copy the file there, or give --weights PATH_OR_URI"
        )
