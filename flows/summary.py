"""The summary that ``stylebatch run`` ends with, on stdout: a table of the pairs that fits the terminal, the gallery,
the summary file (``tasks.runs.report.write_summary``: every reason whole), the totals."""

from __future__ import annotations

import re
import sys

from rich import box
from rich.console import Console
from rich.table import Table

from tasks.runs.records import RunSummary

__all__ = ["print_summary"]

SUMMARY_WIDTH = 100  # columns of the summary when stdout is not a terminal
REASON_LINES = 4  # a reason longer than this in the table keeps its start and its end (the cause)


def print_summary(summary: RunSummary, summary_file: str, width: int | None = None) -> None:
    """The summary on stdout: a table of the pairs that fits ``width`` columns (the terminal's; else
    ``SUMMARY_WIDTH``), the gallery, where the summary file is (``summary_file``: every reason whole there), and
    the totals. Labels wrap between words, reasons wrap and keep at most ``REASON_LINES`` lines; paths below the
    table are never wrapped."""
    if width is None:
        stdout = Console(file=sys.stdout)
        width = stdout.width if stdout.is_terminal else SUMMARY_WIDTH
    lines = [
        *_summary_table(summary, width),
        f"gallery: {summary.gallery.index or summary.gallery.error}",
        f"summary: {summary_file}",
        f"{summary.totals()}; outputs in {summary.out}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


def _summary_table(summary: RunSummary, width: int) -> list[str]:
    """The table's lines: row, pair (its label), status, time, reason; at most ``width`` columns."""
    cells = [
        (
            str(r.row),
            r.label or r.id,
            f"{r.status} {r.frames} frames" if r.frames else str(r.status),
            f"{r.time_s:.1f} s" if r.time_s is not None else "",
            r.reason,
        )
        for r in summary.pairs
    ]
    headers = ("row", "pair", "status", "time", "reason")
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    free = width - sum(widths[i] for i in (0, 2, 3)) - 3 * (len(headers) - 1)  # for pair and reason ("c | c")
    if widths[1] + widths[4] > free:
        widths[1] = _label_width([(c[1], c[4]) for c in cells], free)
        widths[4] = max(free - widths[1], len(headers[4]))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header, column_width, justify in zip(headers, widths, ("right", "left", "left", "right", "left"), strict=True):
        table.add_column(header, justify=justify, width=column_width, no_wrap=True)  # cells come wrapped
    for row, label, status, time_s, reason in cells:
        table.add_row(row, _wrap(label, widths[1]), status, time_s, _wrap(reason, widths[4], REASON_LINES))
    plain = Console(width=width, color_system=None)  # only to lay it out
    with plain.capture() as captured:
        plain.print(table, highlight=False)
    return [line.rstrip() for line in captured.get().splitlines()]


def _label_width(cells: list[tuple[str, str]], free: int, tries: int = 12) -> int:
    """The pairs' column's width when (label, reason) ``cells`` share ``free`` columns: the one that takes the
    fewest lines, a cut reason counting as two more, then the widest; tried at the widths of whole labels and
    of their parts around `` · `` (the widest ``tries`` of those)."""
    labels = [label for label, _ in cells]
    fits = {len(text) for label in labels for text in (label, *label.split(" \N{MIDDLE DOT} "))}
    widths = sorted({w for w in fits if len("pair") <= w <= free - len("reason")} or {len("pair")}, reverse=True)

    def cost(width: int) -> tuple[int, int]:
        lines = [(len(_lines(label, width)), len(_lines(reason, free - width))) for label, reason in cells]
        cut = sum(reason > REASON_LINES for _, reason in lines)
        return sum(max(label, min(reason, REASON_LINES)) for label, reason in lines) + 2 * cut, -width

    best = min(widths[:tries], key=cost)
    return max(len(line) for label in labels for line in ["pair", *_lines(label, best)])  # what they take


def _wrap(text: str, width: int, most: int | None = None) -> str:
    """``text`` in lines of ``width`` (``_lines``); if it needs more than ``most``, its first lines and its end
    (where a reason says the cause), with ``…`` between."""
    lines = _lines(text, width)
    if most is not None and len(lines) > most:
        cut = len(text) - (width - 2)
        tail = text[cut:]
        if text[cut - 1] not in " /" and (boundary := re.search(r"[ /]", tail)):  # from the next word or name on
            tail = tail[boundary.end() :]
        lines = [*lines[: most - 1], f"\N{HORIZONTAL ELLIPSIS} {tail}"]
    return "\n".join(lines)


def _lines(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width``, broken between words; a label also before `` · `` (what tells a
    variant from the others), a word longer than a line after its ``/`` (a path), else anywhere."""
    if len(text) <= width:
        return [text]
    lines: list[str] = []
    for n, part in enumerate(text.split(" \N{MIDDLE DOT} ")):
        lines.append("")
        words = part.split()
        if n and words:  # the dot leads its part
            words[0] = f"\N{MIDDLE DOT} {words[0]}"
        for word in words:
            pieces = [word] if len(word) <= width else re.findall(r"[^/]*/|[^/]+", word)
            for k, piece in enumerate(pieces):
                gap = " " if k == 0 and lines[-1] else ""
                if len(lines[-1]) + len(gap) + len(piece) <= width or not lines[-1]:
                    lines[-1] += gap + piece
                else:
                    lines.append(piece)
                while len(lines[-1]) > width:  # a piece wider than a line
                    lines[-1:] = [lines[-1][:width], lines[-1][width:]]
    return lines
