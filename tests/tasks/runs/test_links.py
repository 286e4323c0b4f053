"""Links that open from a browser (public URL, presigned S3, none) and Markdown that shows text as it is."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from markdown_it import MarkdownIt

from tasks.runs.links import Links, md_code, md_escape, md_image, md_link
from tasks.runs.options import RunOptions
from tasks.storage.folders import write_pair
from tests.support import Bucket, http_get

MARKDOWN = MarkdownIt("commonmark")  # the UI renders with marked; both follow CommonMark's escapes


def rendered(markdown: str) -> str:
    return MARKDOWN.renderInline(markdown)


@pytest.mark.parametrize(
    "text",
    [
        "a_1913_b",
        "content1__style2-3f2a",
        "*bold* and **more**",
        "[not](a link) ![nor](an image)",
        "<b>tag</b> &amp; # heading | pipe ~strike~ `tick`",
        "https://example.com/x_y_z.png",
        "C:\\renders\\a_b",
    ],
)
def test_md_escape_shows_text_as_it_is(text: str) -> None:
    assert rendered(md_escape(text)) == html.escape(text, quote=False).replace("&quot;", '"')


def test_md_escape_keeps_a_cell_on_one_line() -> None:
    assert rendered(md_escape("line one\n\n# line two")) == "line one # line two"


@pytest.mark.parametrize(
    "text", ["renders/a_1913_b/result.png", "x`y", "``z", "stylebatch gallery 'my renders' --serve"]
)
def test_md_code_shows_text_in_a_code_span(text: str) -> None:
    assert rendered(md_code(text)) == f"<code>{html.escape(text, quote=False)}</code>"


def test_md_link_and_image_encode_what_a_link_cannot_hold() -> None:
    url = "https://host/a b/(c)_d.png?X-Amz-Signature=ab%2Fc&x=1"
    assert rendered(md_link("result.png", url)) == (
        '<a href="https://host/a%20b/%28c%29_d.png?X-Amz-Signature=ab%2Fc&amp;x=1">result.png</a>'
    )
    assert rendered(md_image("contact sheet 1", url)).startswith('<img src="https://host/a%20b/%28c%29_d.png?')


@pytest.mark.parametrize("text", ["a_b", "[x]", "*", "a\\b"])
def test_link_text_is_ours_never_text_that_needs_escaping(text: str) -> None:
    with pytest.raises(ValueError, match="would need escaping"):  # Prefect's UI shows escapes in link text as typed
        md_link(text, "https://host/x")


def test_public_url_maps_the_output_root(tmp_path: Path) -> None:
    out = str(tmp_path / "renders")
    links = Links(out, "https://renders.example.com/nightly/")
    assert links.url(f"{out}/a b_1/result.png") == "https://renders.example.com/nightly/a%20b_1/result.png"
    assert links.url(f"{out}/gallery/index.html") == "https://renders.example.com/nightly/gallery/index.html"


def test_local_files_without_a_public_url_have_no_link(tmp_path: Path) -> None:
    links = Links(str(tmp_path / "renders"))
    assert links.url(f"{tmp_path}/renders/x/result.png") is None
    assert links.relative(f"{tmp_path}/renders/x/result.png") == "x/result.png"
    assert links.url("https://cdn.example.com/x.png") == "https://cdn.example.com/x.png"


def test_presigned_links_open_over_http_with_their_content_type(s3: Bucket) -> None:
    out = f"{s3.uri}/renders"
    write_pair(out, "a_1913_b", {"result.png": b"\x89PNG fake", "done.json": b"{}"})
    links = Links(out, expiry_s=3600)

    url = links.url(f"{out}/a_1913_b/result.png")
    assert url is not None and url.startswith("http")
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["3600"]
    assert http_get(url) == (200, "image/png", b"\x89PNG fake")
    assert http_get(links.url(f"{out}/a_1913_b/done.json"))[1] == "application/json"


@pytest.mark.parametrize(
    ("public_url", "expiry_s", "message"),
    [
        ("renders.example.com", 60, "public_url: must be an http:// or https:// URL, not 'renders.example.com'"),
        ("ftp://host/x", 60, "public_url: must be an http:// or https:// URL"),
        ("https://", 60, "public_url: must be an http:// or https:// URL"),
        (None, 0, "link_expiry_s: Input should be greater than or equal to 1"),
        (None, 604801, "link_expiry_s: Input should be less than or equal to 604800"),
    ],
)
def test_bad_link_options_name_the_option(public_url: str | None, expiry_s: int, message: str) -> None:
    """The run's options (``RunOptions``) are checked once, before any link is made."""
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        RunOptions.of(public_url=public_url, link_expiry_s=expiry_s)
