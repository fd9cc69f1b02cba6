"""FAQ answers: markdown rendered to HTML once, on the server, and sanitised by an allow-list.

The workbench's preview and the merchant's widget show the same HTML (``answer_html``); raw HTML written in an
answer is shown as text (markdown-it's ``html`` option off), and whatever the renderer produces still passes
nh3: only the tags and attributes below survive, links only to http(s)/mailto, and every link opens in a new tab
with ``rel="noopener noreferrer"``.
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

TAGS = {"p", "br", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li", "a", "h3", "h4", "h5", "h6",
        "hr", "table", "thead", "tbody", "tr", "th", "td", "del", "s"}
ATTRIBUTES = {"a": {"href", "title", "target"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}
SCHEMES = {"http", "https", "mailto"}

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable("table").enable(
    "strikethrough")
# Headings inside an answer bubble are at most a sub-heading: "# 标题" renders as h3.
_HEADING = {"h1": "h3", "h2": "h4"}


def _link_attributes(tag: str, name: str, value: str) -> str | None:
    if tag == "a" and name == "target":
        return "_blank"
    return value


@lru_cache(maxsize=2048)
def answer_html(markdown: str) -> str:
    """The answer's markdown as safe HTML (cached: answers are few and asked for again and again)."""
    tokens = _md.parse(markdown or "")
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = _HEADING.get(token.tag, token.tag)
    html = _md.renderer.render(tokens, _md.options, {})
    return nh3.clean(html, tags=TAGS, attributes=ATTRIBUTES, url_schemes=SCHEMES, link_rel="noopener noreferrer",
                     set_tag_attribute_values={"a": {"target": "_blank"}},
                     attribute_filter=_link_attributes, strip_comments=True).strip()
