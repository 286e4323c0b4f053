"""Hostile and unicode names: the gallery shows them as text, runs no script, and forbids scripts by CSP."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from markupsafe import escape

from tasks.gallery.build import build_gallery
from tests.conftest import make_image
from tests.tasks.gallery.helpers import (
    FakePair,
    fake_failure,
    load_images,
    parse_page,
    read_pairs,
    render_or_record,
    resolved_links,
    watch,
    write_manifest,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

NewPage = Callable[..., "Page"]

# File names on disk -> the names the gallery shows (it decodes %2F: no file name can hold a slash).
SCRIPT = "<script>alert(1)<%2Fscript>.png"
UNICODE = "café \N{EN DASH} 東京 😀.png"
QUOTES = "\"double\" & 'single'.png"
IMG = "<img src=x onerror=alert(1)>.png"
SHOWN = {SCRIPT: "<script>alert(1)</script>.png", UNICODE: UNICODE, QUOTES: QUOTES, IMG: IMG}
TAGS = ["<b>x</b>", "\"q\" & 's'"]
ERROR = '<script>alert(2)</script> & "boom" <img src=y onerror=alert(3)>'
CSP = re.compile(r'<meta http-equiv="Content-Security-Policy"[^>]*>')


@dataclass(frozen=True)
class Hostile:
    out: Path
    pair_ids: list[str]

    @property
    def gallery(self) -> Path:
        return self.out / "gallery"

    @property
    def failed_id(self) -> str:
        return self.pair_ids[-1]

    def pages(self) -> list[Path]:
        """The index and the detail pages (not the probes that tests write beside them)."""
        return [self.gallery / "index.html", *(self.gallery / "pairs" / f"{i}.html" for i in self.pair_ids)]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    """2 contents x 2 styles with hostile names, rendered; tags with markup; a failure whose error holds markup."""
    root = tmp_path_factory.mktemp("hostile")
    for seed, name in enumerate(SHOWN, start=1):
        make_image(seed, (40, 32)).save(root / name)
    rows = [
        {"content": c, "style": s, "iterations": 2, "tags": "|".join(TAGS)}
        for c in (SCRIPT, UNICODE)
        for s in (QUOTES, IMG)
    ]
    out = root / "renders"
    pairs = read_pairs(write_manifest(root / "hostile.csv", rows))
    assert [render_or_record(pair, str(out)) for pair in pairs] == ["rendered"] * 4
    failed = FakePair("hostile-failure", str(root / SCRIPT), (str(root / QUOTES),), tags=tuple(TAGS))
    fake_failure(str(out), failed, RuntimeError(ERROR))
    build_gallery(str(out))
    return Hostile(out, [*(p.pair_id for p in pairs), failed.pair_id])


def test_the_html_holds_escaped_names_and_no_markup_of_theirs(hostile: Hostile) -> None:
    index, *details = hostile.pages()
    html = index.read_text(encoding="utf-8")

    for shown in SHOWN.values():
        assert str(escape(shown)) in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.png" in html
    assert "&#34;double&#34; &amp; &#39;single&#39;.png" in html
    assert UNICODE in html  # unicode is written as is (UTF-8), not mangled
    for page in [index, *details]:
        parsed = parse_page(page)
        assert "<script" not in page.read_text(encoding="utf-8").lower(), page.name
        assert not {"script", "b", "iframe", "object"} & set(parsed.tags), page.name
        assert not [name for name in parsed.attributes if name.startswith("on")], page.name
        resolved_links(page, hostile.out)
    rendered = [p for p in details if p.stem != hostile.failed_id]
    assert len(rendered) == 4
    for page in rendered:
        assert "&lt;b&gt;x&lt;/b&gt;, &#34;q&#34; &amp; &#39;s&#39;" in page.read_text(encoding="utf-8")
    failed = (hostile.gallery / "pairs" / f"{hostile.failed_id}.html").read_text(encoding="utf-8")
    assert f"RuntimeError: {escape(ERROR)}" in failed


def test_names_are_shown_as_text_and_nothing_runs(hostile: Hostile, new_page: NewPage, artifacts: Path) -> None:
    page = new_page()
    log = watch(page)
    headings = []

    for url in [p.as_uri() for p in hostile.pages()]:
        page.goto(url)
        images = load_images(page)
        assert [i["src"] for i in images if i["width"] == 0] == [], url
        assert page.evaluate("document.scripts.length") == 0, url
        assert page.evaluate("document.querySelectorAll('script, [onerror], [onload], b').length") == 0, url
        text = page.locator("body").inner_text()
        if url.endswith("/index.html"):
            for shown in SHOWN.values():
                assert shown in text
            page.screenshot(path=str(artifacts / "gallery-escaping.png"), full_page=True)
        elif url.endswith(f"/{hostile.failed_id}.html"):
            assert f"RuntimeError: {ERROR}" in text
        else:
            assert "<b>x</b>, \"q\" & 's'" in text
            headings.append(page.locator("h1").inner_text())

    assert sorted(headings) == sorted(
        f"{SHOWN[c]} \N{MULTIPLICATION SIGN} {SHOWN[s]}" for c in (SCRIPT, UNICODE) for s in (QUOTES, IMG)
    )
    assert log.dialogs == []
    assert log.errors == []


def test_escaping_alone_keeps_scripts_out(hostile: Hostile, new_page: NewPage) -> None:
    """Without the CSP meta tag, the names still cannot run anything: they are escaped."""
    page = new_page()
    log = watch(page)
    for source in hostile.pages():
        probe = source.with_name(f"no-csp-{source.name}")
        html = source.read_text(encoding="utf-8")
        assert CSP.search(html)
        probe.write_text(CSP.sub("", html), encoding="utf-8")

        page.goto(probe.as_uri())
        load_images(page)

        assert page.evaluate("document.querySelectorAll('script, [onerror], [onload]').length") == 0
    assert log.dialogs == []
    assert log.errors == []


def test_every_page_forbids_scripts_before_any_content(hostile: Hostile) -> None:
    for page in hostile.pages():
        parsed = parse_page(page)
        assert parsed.tags[:4] == ["html", "head", "meta", "meta"], page.name  # charset, then the policy
        (policy,) = [
            m["content"] for m in parsed.metas if (m.get("http-equiv") or "").lower() == "content-security-policy"
        ]
        directives = {d.split()[0]: d.split()[1:] for d in (policy or "").split(";") if d.strip()}
        assert directives["script-src"] == ["'none'"], page.name
        assert directives["object-src"] == ["'none'"], page.name
        assert directives["base-uri"] == ["'none'"], page.name


def test_the_policy_blocks_a_script_injected_into_a_page(hostile: Hostile, new_page: NewPage) -> None:
    index = hostile.gallery / "index.html"
    probe = index.with_name("csp-probe.html")
    injected = (
        "<script>document.title = 'inline ran'; alert('inline')</script>"
        "<img src='missing.png' onerror=\"document.title = 'handler ran'; alert('handler')\">"
        "<a id=js href=\"javascript:alert('link')\">x</a>"
    )
    probe.write_text(index.read_text(encoding="utf-8").replace("<body>", "<body>" + injected, 1), encoding="utf-8")
    page = new_page()
    log = watch(page)

    page.goto(probe.as_uri())
    page.locator("#js").click()
    page.wait_for_timeout(300)

    assert page.title() == "renders · stylebatch gallery"  # the output root's name: no script changed it
    assert log.dialogs == []
    assert any("Content Security Policy" in error for error in log.errors)  # Chromium reports what it blocked
