"""The run's summary and what the Prefect UI shows of it (table rows, Markdown report)."""

from __future__ import annotations

from typing import Any

from tasks.manifest import Manifest, Pair
from tasks.records import RESULT
from tasks.storage import pair_folder

__all__ = ["STATUSES", "artifact_key", "markdown_report", "row_problems", "summarise", "table_rows"]

STATUSES = ("rendered", "skipped", "failed", "cancelled")


def summarise(
    parsed: Manifest, out: str, outcomes: list[dict[str, Any]], skipped: list[Pair], total_s: float
) -> dict[str, Any]:
    """Counts and one row per pair (rendered, skipped, failed or cancelled) and per bad manifest row."""
    by_id = {p.pair_id: p for p in parsed.pairs}
    rows = [_row(by_id[o["pair_id"]], out, o) for o in outcomes]
    rows += [_row(p, out, {"status": "skipped"}) for p in skipped]
    rows += [
        {"id": "", "row": row, "content": "", "style": "", "status": "failed", "reason": reason}
        for row, reason in row_problems(parsed).items()
    ]
    rows.sort(key=lambda r: r["row"])
    count = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    return {"manifest": parsed.uri, "out": out, **count, "total_s": total_s, "pairs": rows}


def _row(pair: Pair, out: str, outcome: dict[str, Any]) -> dict[str, Any]:
    final = outcome.get("final", {})
    return {
        "id": pair.pair_id,
        "row": pair.row,
        "content": pair.content,
        "style": "|".join(pair.styles),
        "status": outcome["status"],
        "reason": outcome.get("reason", ""),
        **{f"{term}_loss": final.get(term) for term in ("content", "style", "tv", "total")},
        "time_s": outcome.get("wall_s"),
        "output": f"{pair_folder(out, pair.pair_id)}/{RESULT}",
    }


def artifact_key(parsed: Manifest) -> str:
    """Artifact keys may hold lowercase letters, digits and dashes only."""
    return "render-" + "".join(c if c.isalnum() else "-" for c in parsed.name.lower()).strip("-")


def table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows whose output is a Markdown link (the UI renders it) when the result exists."""
    linked = ("rendered", "skipped")
    return [{**r, "output": f"[{RESULT}]({r['output']})" if r["status"] in linked else ""} for r in rows]


def markdown_report(summary: dict[str, Any]) -> str:
    gallery = summary["gallery"]
    lines = [
        f"# {summary['manifest']}",
        f"**{summary['rendered']}** rendered, **{summary['skipped']}** skipped, **{summary['failed']}** failed, "
        f"**{summary['cancelled']}** cancelled in {summary['total_s']:.1f} s.",
        f"- Outputs: `{summary['out']}`",
        f"- Gallery: {gallery['error']}"
        if "error" in gallery
        else f"- Gallery: [{gallery['index']}]({gallery['index']}), {gallery['contents']} contents x "
        f"{gallery['styles']} styles",
    ]
    if gallery.get("contact_sheet"):
        lines.append(f"\n![contact sheet]({gallery['contact_sheet']})")
    failed = [r for r in summary["pairs"] if r["status"] == "failed"]
    lines += ["", "## Failed", *(f"- row {r['row']} {r['id']}: {r['reason']}" for r in failed)] if failed else []
    return "\n".join(lines)


def row_problems(parsed: Manifest) -> dict[int, str]:
    """Each bad manifest row once, with all of its problems."""
    problems: dict[int, list[str]] = {}
    for error in parsed.errors:
        problems.setdefault(error.row, []).append(f"column {error.column}: {error.reason}")
    return {row: "; ".join(reasons) for row, reasons in problems.items()}
