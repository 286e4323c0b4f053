"""The run's summary, its file, and what the Prefect UI shows of it (table rows, Markdown report); an
iteration's loss terms in words, as the terminal and the logs print them."""

from __future__ import annotations

import functools
import itertools
import posixpath
import shlex
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from nst_core.io_errors import storage_error
from tasks.manifest.read import Manifest, Pair, manifest_name
from tasks.runs.links import Links, md_code, md_escape, md_image, md_link
from tasks.runs.records import GalleryResult, Outcome, RunSummary, SummaryRow
from tasks.storage.records import RESULT, VIDEO, LossRow, Status
from tasks.storage.retries import retry_transient
from tasks.storage.root import RUNS, OutputRoot, write_file

if TYPE_CHECKING:
    from nst_core import Settings, StepInfo

__all__ = [
    "artifact_key",
    "markdown_report",
    "row_problems",
    "sheet_urls",
    "step_text",
    "summarise",
    "table_description",
    "table_rows",
    "write_summary",
]


def summarise(parsed: Manifest, out: str, outcomes: list[Outcome], skipped: list[Pair], total_s: float) -> RunSummary:
    """The run's summary: a row per pair (rendered, skipped, failed or cancelled) and per bad manifest row."""
    by_id = {p.pair_id: p for p in parsed.pairs}
    root = OutputRoot.open(out)
    rows = [_row(by_id[o.pair_id], o, root) for o in outcomes]
    rows += [_row(p, Outcome(pair_id=p.pair_id, row=p.row, status=Status.SKIPPED), root) for p in skipped]
    rows += [
        SummaryRow(id="", row=row, status=Status.FAILED, reason=reason) for row, reason in row_problems(parsed).items()
    ]
    return RunSummary.of(parsed.uri, out, sorted(rows, key=lambda r: r.row), total_s)


def _row(pair: Pair, outcome: Outcome, root: OutputRoot) -> SummaryRow:
    return SummaryRow(
        id=pair.pair_id,
        row=pair.row,
        label=pair.label,
        content=pair.content,
        style="|".join(pair.styles),
        status=outcome.status,
        reason=outcome.reason or _resumed(outcome),
        final=outcome.final,
        time_s=outcome.wall_s,
        output=root.pair_uri(pair.pair_id, VIDEO if pair.clip else RESULT),  # a clip's video, not its middle frame
        frames=outcome.frames,
        resumed_at=outcome.resumed_at,
    )


def _resumed(outcome: Outcome) -> str:
    return "" if outcome.resumed_at is None else f"resumed at iteration {outcome.resumed_at}"


def write_summary(summary: RunSummary, retry_for_s: float, now: datetime | None = None) -> str:
    """Write ``summary`` as JSON to ``<out>/runs/<manifest name>-<UTC time>.json``, whole or not at all, and return
    its URI; a run of the same manifest that ended in the same second leaves it ``...-2.json``.

    Raises:
        StorageError: it could not be written (transient errors tried again for ``retry_for_s`` seconds).
        Stopped: a stop was asked for while waiting to try again.
    """
    root = OutputRoot.open(summary.out)
    stem = f"{manifest_name(summary.manifest)}-{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}"
    data = summary.model_dump_json(indent=2).encode()
    for n in itertools.count(1):
        name = f"{stem}.json" if n == 1 else f"{stem}-{n}.json"
        if retry_transient(functools.partial(_write_new, root, name, data), retry_for_s):
            return f"{root.uri}/{RUNS}/{name}"
    raise AssertionError("itertools.count never ends")


def _write_new(root: OutputRoot, name: str, data: bytes) -> bool:
    """Write ``<out>/runs/<name>`` unless a file of that name is there already (False then)."""
    path = f"{root.path}/{RUNS}/{name}"
    try:
        try:
            write_file(root.fs, path, data, exclusive=True)
        except FileExistsError as exc:
            if root.fs.exists(path):
                return False
            raise storage_error(exc, "summaries' folder", f"{root.uri}/{RUNS}") from exc  # a file in its place
    except Exception as exc:
        raise storage_error(exc, "summary", f"{root.uri}/{RUNS}/{name}") from exc
    return True


def step_text(step: StepInfo, settings: Settings) -> str:
    """``level 2/3 · losses (weighted): content 0.12 style 0.34 tv 0.01 total 0.47``: the level only in a
    multi-scale render; each term times its weight, as it enters the total and as the gallery shows it."""
    levels = len(settings.levels())
    terms = LossRow.of(step).weighted(settings)
    losses = "losses (weighted): " + " ".join(f"{term} {value:.3g}" for term, value in terms.items())
    return f"level {step.level}/{levels} \N{MIDDLE DOT} {losses}" if levels > 1 else losses


def artifact_key(parsed: Manifest) -> str:
    """Artifact keys may hold lowercase letters, digits and dashes only."""
    return "render-" + "".join(c if c.isalnum() else "-" for c in parsed.name.lower()).strip("-")


def table_rows(rows: list[SummaryRow], links: Links) -> list[dict[str, Any]]:
    """The table artifact's rows: pair, row, status, time, result (``result.png``, a clip's ``result.mp4``),
    reason (the UI renders string cells as Markdown)."""
    return [
        {
            "pair": md_escape(r.label or r.id),
            "row": r.row,
            "status": str(r.status),
            "time": f"{r.time_s:.1f} s" if r.time_s is not None else "",
            "result": _file(r.output, _name(r), links) if _finished(r) else "",
            "reason": md_escape(_brief(r.reason)),
        }
        for r in rows
    ]


def _brief(reason: str, width: int = 36) -> str:
    """The start and the end (the cause) of a long reason, narrow enough that a 1400 px window shows the whole
    table beside 40-character pair ids (the UI does not wrap cells); the report has it whole."""
    return reason if len(reason) <= width else f"{reason[: width // 3]}…{reason[-(width - width // 3 - 1) :]}"


def _name(row: SummaryRow) -> str:
    """The file name of a pair's result: ``result.png``, or a clip's ``result.mp4``."""
    return posixpath.basename(row.output) or RESULT


def _finished(row: SummaryRow) -> bool:
    return row.status in (Status.RENDERED, Status.SKIPPED)


def _file(uri: str, text: str, links: Links) -> str:
    """A link to ``uri`` where a browser opens it, else ``text`` as text (``table_description`` says where)."""
    url = links.url(uri)
    return md_link(text, url) if url else md_code(text)


def table_description(summary: RunSummary) -> str:
    """What the table shows, and where its results are (a clip's too, if any): shown above it, so the table itself
    stays narrow."""
    root = OutputRoot.open(summary.out)
    results = md_code(root.pair_uri("<pair>", RESULT))
    if any(_name(r) == VIDEO for r in summary.pairs):
        results += f", clips in {md_code(root.pair_uri('<pair>', VIDEO))}"
    return f"Pairs of {md_code(summary.manifest)}; results in {results}"


def sheet_urls(gallery: GalleryResult, links: Links) -> list[str]:
    """URLs of the contact sheets that a browser opens (none for local files without a public URL)."""
    return [url for url in map(links.url, gallery.contact_sheets) if url]


def markdown_report(summary: RunSummary, links: Links) -> str:
    """Counts, the outputs, the gallery (a link, or how to open it), its contact sheets, the clips' videos and the
    failed rows."""
    sheets = sheet_urls(summary.gallery, links)
    lines = [
        f"# {md_escape(summary.manifest)}",
        f"**{summary.rendered}** rendered, **{summary.skipped}** skipped, **{summary.failed}** failed, "
        f"**{summary.cancelled}** cancelled"
        + (f", **{summary.preempted}** preempted" if summary.preempted else "")
        + f" in {summary.total_s:.1f} s.",
        f"- Outputs: {md_code(summary.out)}",
        f"- Gallery: {_gallery(summary.gallery, summary.out, links)}",
        *(f"\n{md_image(f'contact sheet {n}', url)}" for n, url in enumerate(sheets, start=1)),
    ]
    clips = [r for r in summary.pairs if _finished(r) and _name(r) == VIDEO]
    lines += ["", "## Clips", *(_clip(r, links) for r in clips)] if clips else []
    failed = [r for r in summary.pairs if r.status == Status.FAILED]
    lines += ["", "## Failed", *(_failed(r) for r in failed)] if failed else []
    return "\n".join(lines)


def _gallery(gallery: GalleryResult, out: str, links: Links) -> str:
    """A link to the gallery, or its path and the commands that open it."""
    if gallery.error:
        return md_escape(gallery.error)
    shown = f"{gallery.contents} contents x {gallery.styles} styles"
    serve = md_code(f"stylebatch gallery {shlex.quote(out)} --serve")
    url = links.url(gallery.index)
    if url is None:
        xdg_open = md_code(f"xdg-open {shlex.quote(gallery.index)}")
        return f"{md_code(gallery.index)}, {shown}; open it with {serve}, or with {xdg_open} on this machine"
    if links.public_url is None:  # presigned: the page opens; its pictures only where the bucket is readable
        return f"{md_link('index.html', url)}, {shown} (pictures missing? {serve} serves all of it)"
    return f"{md_link('index.html', url)}, {shown}"


def _clip(row: SummaryRow, links: Links) -> str:
    """A clip and its video: a link where a browser opens it, else its path."""
    url = links.url(row.output)
    return f"- {md_escape(row.label or row.id)}: {md_link(VIDEO, url) if url else md_code(row.output)}"


def _failed(row: SummaryRow) -> str:
    pair = f" {md_code(row.id)}" if row.id else ""
    return f"- row {row.row}{pair}: {md_escape(row.reason)}"


def row_problems(parsed: Manifest) -> dict[int, str]:
    """Each bad manifest row once, with all of its problems."""
    problems: dict[int, list[str]] = {}
    for error in parsed.errors:
        problems.setdefault(error.row, []).append(f"column {error.column}: {error.reason}")
    return {row: "; ".join(reasons) for row, reasons in problems.items()}
