"""Links to an output root's files that open from a browser (the Prefect UI), and Markdown that shows text as it is.

A file's URL is, in this order: ``public_url`` + its path under the output root (wherever the user
serves the root), a presigned URL (S3 and other stores that sign), the URI itself if it is http(s),
or none: the caller then shows the path as text, never as a link that cannot open.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from urllib.parse import quote

import fsspec

from tasks.runs.options import MAX_LINK_EXPIRY_S, RunOptions
from tasks.storage.root import is_s3

__all__ = ["Links", "md_code", "md_escape", "md_image", "md_link"]

log = logging.getLogger(__name__)
_HTTP = ("http://", "https://")
# Characters that Markdown (CommonMark, GFM, marked) may read as syntax; ':' stops autolinks.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&:])")
_URL_SAFE = "/:?#[]@!$&'*+,;=%-._~"  # RFC 3986's reserved and unreserved characters, less ( and )


@dataclass(frozen=True)
class Links:
    """Where a browser opens the files under the output root ``out``."""

    out: str
    public_url: str | None = None  # where ``out`` is served, e.g. https://renders.example.com/nightly
    expiry_s: int = MAX_LINK_EXPIRY_S  # how long presigned URLs work

    @classmethod
    def of(cls, options: RunOptions) -> Links:
        """The links of a run (its options are validated: ``RunOptions``)."""
        return cls(options.out, options.public_url, options.link_expiry_s)

    def relative(self, uri: str) -> str:
        """``uri``'s path under the output root (``uri`` itself if it is elsewhere)."""
        return uri.removeprefix(self.out.rstrip("/") + "/")

    def url(self, uri: str) -> str | None:
        """An http(s) URL of ``uri`` that a browser opens, or None (a local file and no public URL)."""
        relative = self.relative(uri)
        if self.public_url and relative != uri:
            return f"{self.public_url.rstrip('/')}/{quote(relative)}"
        if uri.startswith(_HTTP):
            return uri
        fs, path = fsspec.url_to_fs(uri)
        if is_s3(fs):  # SigV4: botocore presigns with SigV2 by default in older regions, which AWS retires
            fs = fsspec.filesystem("s3", config_kwargs={"signature_version": "s3v4"})
        try:
            return fs.sign(path, expiration=self.expiry_s)
        except NotImplementedError:  # local files: nothing to sign
            return None
        except Exception as exc:  # no credentials to sign with ...: the report shows the path instead
            log.warning("no link to %s: %s", uri, exc)
            return None


def md_escape(text: str) -> str:
    """``text`` on one line, shown literally by a Markdown renderer (no italics from ``a_1913_b``, no links)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def md_code(text: str) -> str:
    """``text`` as a code span (shown as it is, in a fixed font), whatever backticks it holds."""
    text = " ".join(text.split())
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_link(text: str, url: str) -> str:
    """A link whose ``text`` is words of ours (``result.png``): Prefect's UI shows escapes in link text as typed."""
    if re.search(r"[][\\`*_<>]", text):
        raise ValueError(f"link text {text!r} would need escaping")
    return f"[{text}]({_md_url(url)})"


def md_image(alt: str, url: str) -> str:
    return f"!{md_link(alt, url)}"


def _md_url(url: str) -> str:
    """``url`` with spaces, parentheses and other characters a Markdown link cannot hold percent-encoded."""
    return quote(url, safe=_URL_SAFE)
