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

