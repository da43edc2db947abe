"""Template filters every app's pages share, loaded into every template
(settings: TEMPLATES "builtins"), so no page needs a {% load %} for them."""

import re

from django.template import Library
from django.utils.html import conditional_escape
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
