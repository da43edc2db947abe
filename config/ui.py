"""Template filters every app's pages share, loaded into every template
(settings: TEMPLATES "builtins"), so no page needs a {% load %} for them."""

import re

from django.template import Library
from django.utils.html import conditional_escape
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

register = Library()

_CODE_SPAN = re.compile(r"`([^`\n]+)`")


@register.filter(is_safe=True)
def code_spans(text):
    """Messages and errors are written for every surface (CLI, API, pages) with
    Markdown-style `code`; on a page the backticks become <code>, never shown."""
    escaped = str(conditional_escape(text))  # the span's text is escaped with the rest
    return mark_safe(_CODE_SPAN.sub(r"<code>\1</code>", escaped))



@register.filter
def duration(milliseconds):
    """A duration as a person reads it: 840 ms, 3.25 s, 12.4 s, 2 min 5 s; "—" when unknown."""
    if milliseconds is None or milliseconds == "":
        return "—"
    ms = int(milliseconds)
    if ms < 1000:
        return f"{ms} ms"
    if ms < 10_000:
        return f"{ms / 1000:.2f} s"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"


@register.inclusion_tag("_sort_link.html")
def sort_link(key, label, current, search="", first_arrow="↓", title=""):
    """A column's sort link on a list page: ``key`` sorts one way and ``-key`` the other.

    ``current`` is the page's sort; ``first_arrow`` is how ``key`` itself reads (↑ for names
    A to Z, ↓ for newest or most first). Clicking the active column flips it.
    """
    flipped = "↑" if first_arrow == "↓" else "↓"
    arrow = first_arrow if current == key else flipped if current == f"-{key}" else ""
    query = {"q": search} if search else {}
    query["sort"] = f"-{key}" if current == key else key
    return {"label": label, "arrow": arrow, "active": bool(arrow), "href": "?" + urlencode(query), "title": title}
