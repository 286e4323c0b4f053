"""The ``render_manifest`` flow against a real (temporary) Prefect server, real files, S3 (moto) and HTTP."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any
from uuid import UUID

import pandas as pd
import pytest
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.utilities.urls import url_for

from flows.render_manifest import render_manifest
from tasks.runs import stopping
from tasks.runs.records import RunSummary, SummaryRow
from tasks.storage.records import DONE, RECORD, read_record
from tasks.storage.root import GALLERY, RUNS
from tests.flows.helpers import FAST, PAIR_FILES, Tiny, flow_run_id, pair_dirs
from tests.support import Bucket, WebFolder, http_get, run_family, wait_for

pytestmark = pytest.mark.usefixtures("prefect_api")


def run(manifest: Path | str, out: Path | str, **kwargs: Any) -> tuple[RunSummary, UUID]:
    """Run the flow; return its summary and its flow run id."""
    kwargs.setdefault("defaults", FAST)
    state = render_manifest(str(manifest), out=str(out), return_state=True, **kwargs)
    return state.result(raise_on_failure=False), flow_run_id(state)


def counts(summary: RunSummary) -> tuple[int, int, int]:
    return summary.rendered, summary.skipped, summary.failed


def by_status(summary: RunSummary, status: str) -> dict[str, SummaryRow]:
    return {row.id: row for row in summary.pairs if row.status == status}


def result_mtimes(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/result.png")}


def gallery_counts(out: Path) -> dict[str, int]:
    """The counts at the top of the gallery page the flow wrote."""
    text = (out / GALLERY / "index.html").read_text()
    return {status: int(re.search(rf"(\d+) {status}\b", text)[1]) for status in ("rendered", "failed", "pending")}


# --- a clean run: files, artifacts, names, logs --------------------------------------------------------------------


def test_renders_every_pair_with_artifacts_and_logs(tiny: Tiny, tmp_path: Path) -> None:
    manifest = tiny.cross(2, 2, name="Spring Batch.csv")
    out = tmp_path / "out"
    summary, run_id = run(manifest, out)

    assert counts(summary) == (4, 0, 0)
    assert summary.manifest == str(manifest)
    assert summary.total_s > 0
    folders = pair_dirs(out)
    assert len(folders) == 4
    assert all(files == PAIR_FILES for files in folders.values()), folders
    for pair_id in folders:
        folder = out / pair_id
        with Image.open(folder / "result.png") as image:
            assert image.format == "PNG"
            assert image.size == (32, 26)  # the 40x32 contents, long side 32
        losses = pd.read_csv(folder / "losses.csv")
        assert len(losses) == 2
        assert {"iteration", "content", "style", "tv", "total"} <= set(losses.columns)
        record = read_record((folder / RECORD).read_bytes(), (folder / DONE).read_bytes())
        assert record.pair_id == pair_id
        assert (record.settings.iterations, record.settings.weights) == (2, "random:0")
        assert record.final.total == pytest.approx(losses["total"].iloc[-1], rel=1e-6)
    assert all(Path(row.output).is_file() for row in summary.pairs)
    assert Path(summary.gallery.index).is_file()
    assert {(Path(r.content).name, Path(r.style).name) for r in summary.pairs} == {
        (c, s) for c in ("content1.png", "content2.png") for s in ("style1.png", "style2.png")
    }

    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run_id).name == "render-Spring Batch"
        runs = run_family(client, run_id)  # the run and its subflow runs, if the fan-out is a subflow

        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=runs))
        )
        by_key = {a.key: a for a in artifacts}
        assert set(by_key) == {"render-spring-batch", "render-spring-batch-pairs", "render-spring-batch-report"}
        assert {a.flow_run_id for a in artifacts} == {run_id}  # the run that "View at" opens, not its subflow
        progress = by_key["render-spring-batch"]
        assert progress.type == "progress"
        assert float(progress.data) == 100
        table = by_key["render-spring-batch-pairs"]
        assert table.type == "table"
        rows = json.loads(table.data) if isinstance(table.data, str) else table.data
        assert len(rows) == 4
        labels = {
            f"content{c} \N{MULTIPLICATION SIGN} style{s}": f"content{c}__style{s}" for c in (1, 2) for s in (1, 2)
        }
        assert {r["pair"] for r in rows} == set(labels)  # pairs named for people
        for row in rows:
            [pair_id] = [folder for folder in folders if folder.startswith(labels[row["pair"]] + "-")]
            assert list(row) == ["pair", "row", "status", "time", "result", "reason"]
            assert row["status"] == "rendered"
            assert re.fullmatch(r"\d+\.\d s", row["time"])
            assert row["result"] == "`result.png`"  # a local file: text, not a broken link
            assert (out / pair_id / "result.png").is_file()
        assert table.description.endswith(f"; results in `{out}/<pair>/result.png`")
        report = by_key["render-spring-batch-report"]
        assert report.type == "markdown"
        assert "**4** rendered, **0** skipped, **0** failed" in report.data
        assert re.findall(r"\]\(([^)]*)\)", report.data) == [url_for("flow-run", obj_id=runs[1])]  # none to a file
        assert f"`stylebatch gallery {out} --serve`" in report.data

        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=runs)))
        assert all(t.state_name == "Completed" for t in task_runs)
        names = [t.name for t in task_runs]
        renders = {t.name: t for t in task_runs if t.name in {f"render {label}" for label in labels}}
        assert len(renders) == 4
        assert all(names.count(name) == 1 for name in renders)

        def loss_logs() -> dict[UUID, list[str]]:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=runs)))
            found: dict[UUID, list[str]] = {}
            for log in logs:
                if "iteration 2/2: " in log.message and log.task_run_id is not None:
                    found.setdefault(log.task_run_id, []).append(log.message)
            return found if len(found) == 4 else {}

        logs = wait_for(loss_logs)  # logs reach the API in batches, every ~2 s
        assert set(logs) == {t.id for t in renders.values()}
        for row in summary.pairs:  # the terms as the gallery shows them: each times its weight (style_weight 3)
            settings = read_record((out / row.id / RECORD).read_bytes(), (out / row.id / DONE).read_bytes()).settings
            terms = " ".join(f"{term} {value:.3g}" for term, value in row.final.weighted(settings).items())
            [message] = logs[renders[f"render {row.label}"].id]
            assert re.fullmatch(rf"iteration 2/2: losses \(weighted\): {re.escape(terms)} \(\d+\.\d s\)", message)


# --- reruns --------------------------------------------------------------------------------------------------------


def render_task_runs(run_id: UUID) -> list[str]:
    """The names of the render tasks of a run and its subflows."""
    with get_client(sync_client=True) as client:
        runs = run_family(client, run_id)
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=runs)))
    return [t.name for t in task_runs if t.name.startswith("render ")]


def test_reruns_skip_finished_pairs_and_render_changed_rows(tiny: Tiny, tmp_path: Path) -> None:
    content_names, style_names = tiny.images(2, 2)
    rows = [[c, s, ""] for c in content_names for s in style_names]

    def write(rows: list[list[str]]) -> Path:
        return tiny.manifest("\n".join(["content,style,iterations", *(",".join(r) for r in rows)]) + "\n")

    manifest, out = write(rows), tmp_path / "out"
    first, _ = run(manifest, out)
    assert counts(first) == (4, 0, 0)
    mtimes = result_mtimes(out)
    markers = {p.parent.name: p.read_bytes() for p in out.glob("*/done.json")}
    assert len(mtimes) == 4

    again, again_id = run(manifest, out)
    assert counts(again) == (0, 4, 0)
    assert render_task_runs(again_id) == []  # finished pairs never reach a render task
    assert set(by_status(again, "skipped")) == set(mtimes)
    assert result_mtimes(out) == mtimes
    assert {p.parent.name: p.read_bytes() for p in out.glob("*/done.json")} == markers

    rows[1][2] = "3"  # one row's own setting changes: a new pair id, rendered; the others are skipped
    changed, _ = run(write(rows), out)
    assert counts(changed) == (1, 3, 0)
    (new_id,) = by_status(changed, "rendered")
    assert new_id not in mtimes
    assert set(by_status(changed, "skipped")) < set(mtimes)
    assert (
        read_record((out / new_id / RECORD).read_bytes(), (out / new_id / DONE).read_bytes()).settings.iterations == 3
    )
    assert len(pd.read_csv(out / new_id / "losses.csv")) == 3
    assert {k: v for k, v in result_mtimes(out).items() if k in mtimes} == mtimes

    forced, _ = run(write(rows), out, force=True)
    assert counts(forced) == (4, 0, 0)
    after = result_mtimes(out)
    current = set(by_status(forced, "rendered"))
    assert current == set(by_status(changed, "skipped")) | {new_id}
    assert all(after[k] != v for k, v in mtimes.items() if k in current)
    assert all(pair_dirs(out)[k] == PAIR_FILES for k in current)


def test_result_never_visible_without_its_marker(tiny: Tiny, tmp_path: Path) -> None:
    """A reader polling ``out`` during a run never sees a pair folder with ``result.png`` but no ``done.json``."""
    manifest, out = tiny.cross(2, 2), tmp_path / "out"
    out.mkdir()
    stop = threading.Event()
    torn: list[set[str]] = []
    complete: set[str] = set()
    polls = [0]

    def poll() -> None:
        while not stop.is_set():
            polls[0] += 1
            for entry in os.scandir(out):
                if entry.name.startswith("."):  # a staging folder, not a pair
                    continue
                try:
                    names = set(os.listdir(entry.path))
                except FileNotFoundError:
                    continue
                if "result.png" in names and "done.json" not in names:
                    torn.append(names)
                if "done.json" in names:
                    complete.add(entry.name)

    watcher = threading.Thread(target=poll)
    watcher.start()
    try:
        summary, _ = run(manifest, out)
    finally:
        stop.set()
        watcher.join()
    assert counts(summary) == (4, 0, 0)
    assert torn == []
    assert polls[0] > 10
    assert complete == set(pair_dirs(out))


# --- bad rows ------------------------------------------------------------------------------------------------------


def test_bad_rows_fail_with_reasons_while_good_rows_render(tiny: Tiny, tmp_path: Path) -> None:
    tiny.images(2, 2)
    (tmp_path / "corrupt.png").write_bytes(os.urandom(2048))
    manifest = tiny.manifest(
        "id,content,style,iterations,colour\n"
        "good-a,content1.png,style1.png,,\n"  # row 2
        "good-b,content2.png,style2.png,,\n"  # row 3
        "short,content1.png,style1.png,\n"  # row 4: one field short (colour)
        "unknown,content1.png,style2.png,,blue\n"  # row 5: a value in an unknown column
        "missing,nowhere.png,style1.png,,\n"  # row 6: no such file
        "corrupt,content1.png,corrupt.png,,\n"  # row 7: random bytes named .png
        "good-a,content2.png,style1.png,,\n"  # row 8: duplicate id
        "../../x,content1.png,style1.png,,\n"  # row 9: escapes out
        ",content2.png,style1.png,,\n"  # row 10: automatic id
    )
    out = tmp_path / "out"
    before = set(tmp_path.iterdir())
    summary, _ = run(manifest, out)

    assert counts(summary) == (3, 0, 6)
    rendered = by_status(summary, "rendered")
    assert {r.row for r in rendered.values()} == {2, 3, 10}
    assert {"good-a", "good-b"} < set(rendered)
    failed = {row.row: row.reason for row in summary.pairs if row.status == "failed"}
    expected = {
        4: ["colour", "missing"],
        5: ["colour", "unknown setting"],
        6: ["content image", "nowhere.png: not found"],
        7: ["style image", "corrupt.png", "not an image"],
        8: ["duplicate id", "good-a", "row 2"],
        9: ["../../x", "not a safe folder name"],
    }
    assert set(failed) == set(expected)
    for row, words in expected.items():
        assert all(word in failed[row] for word in words), (row, failed[row])

    folders = pair_dirs(out)
    for pair_id in rendered:
        assert folders[pair_id] == PAIR_FILES
    for pair_id in ("missing", "corrupt"):  # failed renders leave their reason, never a result
        assert folders[pair_id] == {"failed.json"}
        assert pair_id in json.loads((out / pair_id / "failed.json").read_text())["pair_id"]
    assert set(folders) == {*rendered, "missing", "corrupt"}
    assert set(tmp_path.iterdir()) == before | {out}
    assert not (tmp_path.parent / "x").exists()
    assert not (tmp_path.parent.parent / "x").exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no staging folders left


def test_a_row_with_several_problems_counts_as_one_failed_row(tiny: Tiny, tmp_path: Path) -> None:
    """A short row missing three fields is one bad row: ``failed`` counts rows, not problems."""
    tiny.images(1, 1)
    manifest = tiny.manifest(
        "content,style,iterations,seed\n"
        "content1.png,style1.png,,\n"  # row 2: good
        "content1.png\n"  # row 3: style, iterations and seed missing
    )
    summary, _ = run(manifest, tmp_path / "out")
    failed = [row for row in summary.pairs if row.status == "failed"]
    assert all(row.row == 3 for row in failed)
    assert "style" in " ".join(row.reason for row in failed)
    assert (summary.rendered, summary.failed) == (1, 1), failed


def test_gallery_shows_the_pairs_rendered_with_run_defaults(tiny: Tiny, tmp_path: Path) -> None:
    """Automatic ids hash the settings, run defaults included: the flow's gallery must find those pairs."""
    manifest, out = tiny.cross(1, 2), tmp_path / "out"
    summary, _ = run(manifest, out)  # defaults=FAST, as `stylebatch run --iterations 2 ...` passes them
    assert counts(summary) == (2, 0, 0)
    assert gallery_counts(out) == {"rendered": 2, "failed": 0, "pending": 0}
    assert {page.stem for page in (out / GALLERY / "pairs").glob("*.html")} == set(pair_dirs(out))


@pytest.mark.parametrize("reserved", [GALLERY, RUNS])
def test_a_pair_id_cannot_take_the_gallery_or_runs_folder(tiny: Tiny, tmp_path: Path, reserved: str) -> None:
    """``id=gallery`` must not render into ``out/gallery/`` (nor ``id=runs`` into the summaries' folder): the
    gallery would list that pair as pending forever."""
    (content,), (style,) = tiny.images(1, 1)
    manifest = tiny.manifest(f"id,content,style\n{reserved},{content},{style}\nother,{content},{style}\n")
    out = tmp_path / "out"
    summary, _ = run(manifest, out)
    assert counts(summary) == (1, 0, 1)
    (bad,) = [row for row in summary.pairs if row.status == "failed"]
    assert bad.row == 2 and "reserved" in bad.reason
    assert gallery_counts(out) == {"rendered": 1, "failed": 1, "pending": 0}  # the bad row, as the run counts it
    assert not (out / reserved / "done.json").exists()  # the folder holds no pair's files


# --- remote inputs and outputs -------------------------------------------------------------------------------------


def test_s3_inputs_manifest_and_outputs(tiny: Tiny, s3: Bucket) -> None:
    content_names, style_names = tiny.images(2, 1)
    for name in [*content_names, *style_names]:
        s3.put(f"in/{name}", (tiny.root / name).read_bytes())
    rows = [f"in/{c},in/{s}" for c in content_names for s in style_names]
    manifest = s3.put("m.csv", ("content,style\n" + "\n".join(rows) + "\n").encode())
    out = f"{s3.uri}/renders"

    summary, run_id = run(manifest, out, link_expiry_s=3600)
    assert counts(summary) == (2, 0, 0)
    assert {row.content for row in summary.pairs} == {f"{s3.uri}/in/{c}" for c in content_names}
    keys = {key for key in s3.keys("renders") if not key.startswith("gallery/")}
    ids = {key.split("/")[0] for key in keys}
    assert ids == {row.id for row in summary.pairs}
    assert keys == {f"{pair_id}/{name}" for pair_id in ids for name in PAIR_FILES}
    for row in summary.pairs:
        assert row.output == f"{out}/{row.id}/result.png"
        with Image.open(io.BytesIO(s3.get(f"renders/{row.id}/result.png"))) as image:
            assert image.size == (32, 26)
        record = read_record(s3.get(f"renders/{row.id}/{RECORD}"), s3.get(f"renders/{row.id}/{DONE}"))
        assert (record.content.uri, record.pair_id) == (row.content, row.id)
        assert len(pd.read_csv(io.BytesIO(s3.get(f"renders/{row.id}/losses.csv")))) == 2

    # the Prefect UI's links are presigned: a browser opens each with the right content type
    artifacts = run_artifacts(run_id)
    for row in json.loads(artifacts["render-m-pairs"].data):
        url = link(row["result"], "result.png")
        assert "X-Amz-Expires=3600" in url
        pair_id = {r.row: r.id for r in summary.pairs}[row["row"]]
        assert http_get(url) == (200, "image/png", s3.get(f"renders/{pair_id}/result.png"))
    assert_gallery_links_open(artifacts, "render-m")

    again, _ = run(manifest, out)
    assert counts(again) == (0, 2, 0)


def test_public_url_links_open_where_the_output_root_is_served(tiny: Tiny, web: WebFolder) -> None:
    (c1,), (s1, s2) = tiny.images(1, 2)
    manifest = tiny.manifest(f"id,content,style\na_1913_b,{c1},{s1}\nc_2_d,{c1},{s2}\n", name="served.csv")
    out = web.root / "nightly"
    run(manifest, out, public_url=f"{web.url}/nightly")
    summary, run_id = run(manifest, out, public_url=f"{web.url}/nightly")  # nothing left to render

    assert counts(summary) == (0, 2, 0)
    artifacts = run_artifacts(run_id)
    assert artifacts["render-served"].type == "progress" and float(artifacts["render-served"].data) == 100
    rows = json.loads(artifacts["render-served-pairs"].data)
    assert [row["pair"] for row in rows] == ["a\\_1913\\_b", "c\\_2\\_d"]  # not italic in the UI
    for row, pair_id in zip(rows, ["a_1913_b", "c_2_d"], strict=True):
        url = link(row["result"], "result.png")
        assert url == f"{web.url}/nightly/{pair_id}/result.png"
        assert http_get(url) == (200, "image/png", (out / pair_id / "result.png").read_bytes())
    assert_gallery_links_open(artifacts, "render-served")


def run_artifacts(run_id: UUID) -> dict[str, Any]:
    """The artifacts of the run itself (not of its subflows), by key."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return {a.key: a for a in found}


def link(markdown: str, text: str) -> str:
    """The URL of a Markdown link whose text is ``text``."""
    match = re.fullmatch(rf"\[{re.escape(text)}\]\((\S+)\)", markdown)
    assert match, markdown
    return match[1]


def assert_gallery_links_open(artifacts: dict[str, Any], key: str) -> None:
    """The report links the gallery's page and shows each contact sheet, also an image artifact; all open."""
    report = artifacts[f"{key}-report"].data
    gallery = re.search(r"- Gallery: (\[[^]]+\]\(\S+\))", report)[1]
    status, content_type, page = http_get(link(gallery, "index.html"))
    assert (status, content_type.split(";")[0]) == (200, "text/html") and b"<html" in page
    shown = re.findall(r"^!\[contact sheet \d+\]\((\S+)\)$", report, flags=re.M)
    sheets = [a for k, a in artifacts.items() if k.startswith(f"{key}-contact-sheet-")]
    assert shown and len(sheets) == len(shown)
    for url in [*shown, *(a.data for a in sheets)]:
        status, content_type, png = http_get(url)
        assert (status, content_type) == (200, "image/png") and png.startswith(b"\x89PNG")
    assert {a.type for a in sheets} == {"image"}


def test_http_inputs(tiny: Tiny, tmp_path: Path, web: WebFolder) -> None:
    www, url = web.root, web.url
    content_names, style_names = tiny.images(1, 2)
    for name in [*content_names, *style_names]:
        shutil.copy(tiny.root / name, www / name)
    rows = [f"{url}/{c},{url}/{s}" for c in content_names for s in style_names]
    manifest = tiny.manifest("content,style\n" + "\n".join(rows) + "\n")
    out = tmp_path / "out"

    summary, _ = run(manifest, out)
    assert counts(summary) == (2, 0, 0)
    for row in summary.pairs:
        assert row.content == f"{url}/content1.png"
        assert pair_dirs(out)[row.id] == PAIR_FILES
        settings = json.loads((out / row.id / "settings.json").read_text())
        assert [s["uri"] for s in settings["styles"]] == [row.style]
        assert row.id.startswith("content1__style")


def test_transient_http_errors_on_inputs_are_retried(tiny: Tiny, tmp_path: Path, flaky_web: WebFolder) -> None:
    """An input server answering 503 for a moment is a network error, not a bad input: the pair is retried."""
    www, url = flaky_web.root, flaky_web.url
    (content,), (style,) = tiny.images(1, 1)
    for name in (content, style):
        shutil.copy(tiny.root / name, www / name)
    manifest = tiny.manifest(f"id,content,style\nflaky,{url}/{content},{url}/{style}\n")
    summary, _ = run(manifest, tmp_path / "out")
    assert counts(summary) == (1, 0, 0), summary.pairs[0].reason


def test_an_input_is_fetched_once_per_run_however_many_pairs_use_it(
    tiny: Tiny, tmp_path: Path, down_web: tuple[WebFolder, dict[str, int]]
) -> None:
    """Six pairs share a content image whose server is down: one fetch (with its retries) fails all six."""
    web, requests = down_web
    _, style_names = tiny.images(0, 6)
    manifest = tiny.manifest("content,style\n" + "".join(f"{web.url}/photo.jpg,{s}\n" for s in style_names))
    summary, _ = run(manifest, tmp_path / "out", retry_for_s=3)
    assert counts(summary) == (0, 0, 6)
    reasons = {row.reason for row in summary.pairs}
    assert len(reasons) == 1
    (reason,) = reasons
    assert reason.startswith(f"content image {web.url}/photo.jpg: HTTP 503 from the server (gave up after ")
    tries = int(re.search(r"gave up after (\d+) tries", reason)[1])
    assert requests["/photo.jpg"] <= 3 * tries  # one fetch's tries (fsspec asks 2-3 times each), not six fetches'


# --- failed pairs in the UI ----------------------------------------------------------------------------------------


def test_a_failed_pair_is_a_failed_task_run_with_its_reason(tiny: Tiny, tmp_path: Path) -> None:
    """Monitoring in the Prefect UI: the failed pair's task run is Failed, its message the one-line reason."""
    tiny.images(1, 1)
    manifest = tiny.manifest("id,content,style\nok,content1.png,style1.png\nlost,nowhere.png,style1.png\n")
    summary, run_id = run(manifest, tmp_path / "out")
    assert counts(summary) == (1, 0, 1)
    reason = f"content image {tmp_path.resolve()}/nowhere.png: not found"
    assert by_status(summary, "failed")["lost"].reason == reason
    with get_client(sync_client=True) as client:
        runs = run_family(client, run_id)
        task_runs = {
            t.name: t for t in client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=runs)))
        }
        assert task_runs["render lost"].state_name == "Failed"
        assert task_runs["render lost"].state.message == reason
        assert task_runs["render ok"].state_name == "Completed"
        assert task_runs["render lost"].run_count == 1  # a missing input is not retried


def test_run_states_tell_all_good_partial_and_nothing_rendered_apart(tiny: Tiny, tmp_path: Path) -> None:
    """The Prefect UI's runs list shows each run's state: Completed only when nothing failed; Partial (a Failed
    state) when some pairs rendered and some failed or were bad rows; Failed when nothing rendered. The render
    subflow's run says the same of its pairs, and the run's report links to it."""
    tiny.images(2, 1)
    manifests = {
        "good": "content,style\ncontent1.png,style1.png\ncontent2.png,style1.png\n",
        "partial": "content,style,iterations\ncontent1.png,style1.png,\nnowhere.png,style1.png,\n,style1.png,\n",
        "nothing": "content,style\nnowhere.png,style1.png\ngone.png,style1.png\n",
    }
    expected = {
        "good": ("COMPLETED", "Completed", None, None),
        "partial": ("FAILED", "Partial", "1 rendered, 2 failed", ("Partial", "1 rendered, 1 failed")),
        "nothing": ("FAILED", "Failed", "0 rendered, 2 failed", ("Failed", "0 rendered, 2 failed")),
    }
    for name, text in manifests.items():
        summary, run_id = run(tiny.manifest(text, f"{name}.csv"), tmp_path / name)
        assert isinstance(summary, RunSummary)  # the result in every end
        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(run_id)
            state_type, state_name, message, subflow = expected[name]
            assert (flow_run.state_type.value, flow_run.state_name) == (state_type, state_name)
            assert flow_run.state.message == message or (message is None and summary.failed == 0)
            [child] = [r for r in run_family(client, run_id) if r != run_id]
            child_state = client.read_flow_run(child).state
            if subflow:
                assert (child_state.name, child_state.message) == subflow
            else:
                assert child_state.is_completed()
            report = next(
                a
                for a in client.read_artifacts(
                    artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
                )
                if a.type == "markdown"
            )
            assert f"/runs/flow-run/{child})" in report.data


def test_a_preempted_run_is_crashed_named_preempted(tiny: Tiny, tmp_path: Path) -> None:
    """After a preemption notice the run's state says so (not Failed, not Cancelled): a scheduler retries it."""
    tiny.images(2, 1)
    manifest = tiny.manifest("content,style\ncontent1.png,style1.png\ncontent2.png,style1.png\n", "preempted.csv")
    stopping.request_stop(preempt=True)  # as SIGTERM's handler does; here before the first pair is claimed
    try:
        summary, run_id = run(manifest, tmp_path / "out")
    finally:
        stopping.reset()
    assert (summary.rendered, summary.preempted) == (0, 2)
    assert summary.totals().startswith("rendered 0, skipped 0, failed 0, cancelled 0, preempted 2 in ")
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(run_id)
    assert (flow_run.state_type.value, flow_run.state_name) == ("CRASHED", "Preempted")
    assert flow_run.state.message == "preempted: 0 rendered, 2 preempted"
