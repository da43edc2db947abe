"""The template filters every page has (config/ui.py): durations as people read them, Markdown-style
`code` in messages rendered as code and never as backticks."""

import pytest
from django.template import engines

from config.ui import code_spans, duration


@pytest.mark.parametrize("ms, shown", [
    (None, "—"), (0, "0 ms"), (840, "840 ms"), (999, "999 ms"), (1000, "1.00 s"), (3250, "3.25 s"),
    (12_400, "12.4 s"), (59_949, "59.9 s"), (60_000, "1 min"), (125_000, "2 min 5 s"), (2_700_000, "45 min"),
])
def test_a_duration_reads_in_the_unit_that_suits_it(ms, shown):
    assert duration(ms) == shown


def test_backticks_become_code_and_everything_else_stays_escaped():
    assert code_spans("Use `zip -r` or `samsara-fn bundle`.") == "Use <code>zip -r</code> or <code>samsara-fn bundle</code>."
    assert code_spans("<b>`<i>x</i>`</b>") == "&lt;b&gt;<code>&lt;i&gt;x&lt;/i&gt;</code>&lt;/b&gt;"
    assert code_spans("a lone ` stays") == "a lone ` stays"


def test_every_template_has_the_filters_without_loading_them():
    template = engines["django"].from_string("{{ m|code_spans }} {{ ms|duration }}")
    assert template.render({"m": "run `bin/run`", "ms": 1500}) == "run <code>bin/run</code> 1.50 s"


def test_a_sort_link_flips_the_active_column_and_keeps_the_search():
    from django.template import Context, Template

    def render(current, **options):
        extra = " ".join(f'{key}="{value}"' for key, value in options.items())
        return Template(f'{{% sort_link "name" "Name" current search {extra} %}}').render(
            Context({"current": current, "search": "fleet sync"}))

    assert render("name", first_arrow="↑") == (
        '<a class="sort-link active" href="?q=fleet+sync&amp;sort=-name" aria-current="true">Name ↑</a>\n')
    assert render("-name", first_arrow="↑") == (
        '<a class="sort-link active" href="?q=fleet+sync&amp;sort=name" aria-current="true">Name ↓</a>\n')
    # Another column active: this one offers its first direction and shows no arrow.
    assert render("last_run", title="By name") == (
        '<a class="sort-link" href="?q=fleet+sync&amp;sort=name" title="By name">Name</a>\n')
