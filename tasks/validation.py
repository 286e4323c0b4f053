"""What ``stylebatch validate`` checks without rendering: every row's settings, inputs and weights.

Each distinct input is read and decoded once, however many rows use it (in parallel: inputs may be
remote); each distinct weights value is checked once: a file must hold a state dict that fits its
backbone; ``imagenet`` must be in the Torch hub cache or its download host must answer. Problems
that several rows share are reported once, with the list of rows.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from nst_core import NstError, StorageError
from nst_core.images import decode_image, read_bytes
from nst_core.io_errors import describe
from nst_core.networks import NETWORKS, RANDOM_WEIGHTS, imagenet_cache_path
from nst_core.settings import INIT_MODES
from tasks.manifest import Manifest, Pair

__all__ = ["Problem", "check_weights", "validate"]

DOWNLOAD_CHECK_TIMEOUT_S = 10


@dataclass(frozen=True)
class Problem:
    rows: tuple[int, ...]  # lines in the manifest; 1 is the header
    column: str
    reason: str

    def __str__(self) -> str:
        return f"{_rows(self.rows)}, column {self.column}: {self.reason}"


def validate(manifest: Manifest) -> list[Problem]:
    """Every problem of ``manifest``, in file order; problems shared by rows once, with their rows."""
    found: dict[tuple[str, str], list[int]] = {}
    for error in manifest.errors:
        found.setdefault((error.column, error.reason), []).append(error.row)
    pairs = sorted([*manifest.pairs, *manifest.rejected], key=lambda p: p.row)
    uses = [(pair.row, column, check) for pair in pairs for column, check in _uses(pair)]
    checks = list(dict.fromkeys(check for *_, check in uses))
    uris = list(dict.fromkeys(check[1] for check in checks if check[0] == "image"))
    with ThreadPoolExecutor(max_workers=8) as pool:  # inputs may be remote: overlap the reads
        blobs = dict(zip(uris, pool.map(_fetch, uris), strict=True))
        reasons = dict(zip(checks, pool.map(lambda check: _check(check, blobs), checks), strict=True))
    for row, column, check in uses:
        if reasons[check] is not None:
            found.setdefault((column, reasons[check]), []).append(row)
    problems = [Problem(tuple(sorted(set(rows))), column, reason) for (column, reason), rows in found.items()]
    return sorted(problems, key=lambda p: p.rows[0])  # stable: within a row, settings first, then inputs


def _uses(pair: Pair) -> Iterable[tuple[str, tuple[str, ...]]]:
    """(column, check) for each input and the weights of ``pair``."""
    limit = str(pair.settings.max_pixels)
    yield "content", ("image", pair.content, "content image", limit)
    for uri in pair.styles:
        yield "style", ("image", uri, "style image", limit)
    if pair.settings.init not in INIT_MODES:
        yield "init", ("image", pair.settings.init, "init image", limit)
    yield "weights", ("weights", pair.settings.backbone, pair.settings.weights)


def _fetch(uri: str) -> bytes | StorageError:
    try:
        return read_bytes(uri, "input")
    except StorageError as exc:
        return exc


def _check(check: tuple[str, ...], blobs: dict[str, bytes | StorageError]) -> str | None:
    """Why ``check`` fails, or None."""
    if check[0] == "weights":
        return check_weights(*check[1:])
    _, uri, role, limit = check
    data = blobs[uri]
    try:
        if isinstance(data, StorageError):
            raise data.as_(role)
        decode_image(data, uri, role, max_pixels=int(limit))
    except NstError as exc:
        return str(exc)
    return None


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


def _rows(rows: tuple[int, ...]) -> str:
    """``row 3`` or ``rows 2-4, 7``."""
    spans: list[list[int]] = []
    for row in rows:
        if spans and row == spans[-1][1] + 1:
            spans[-1][1] = row
        else:
            spans.append([row, row])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
    return f"{'rows' if len(rows) > 1 else 'row'} {text}"
