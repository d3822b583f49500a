"""The cost of the template work budget (nurture.sandbox): a typical marketing email template
(greeting, a loop over a short list, filters, a condition) rendered by the budgeted
`MailSandbox` inside `bounded()`, against Jinja's plain `SandboxedEnvironment` rendering the
same template in the same run. Both compile once and render BENCH_TEMPLATE_RENDERS times
(interleaved, best of five). Target: the budget keeps ≥ 0.5× the plain sandbox's renders per second (a
whole email — Markdown, nh3, CSS inlining — costs far more than the template itself)."""

from __future__ import annotations

import time
from typing import Any

from jinja2 import select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from bench.lib import Context, Row
from bench.scratch import env_int

TEMPLATE = """<p>Hi {{ lead.first_name|default('there')|title }},</p>
<p>Thanks for downloading {{ campaign.name }}. Three things teams at {{ lead.company }} ask:</p>
<ul>{% for item in items %}<li>{{ loop.index }}. {{ item.title|e }} — {{ item.summary|truncate(60) }}</li>
{% endfor %}</ul>
{% if lead.attributes.get('size') in ('51-200', '201-1000') %}<p>Book a demo for your team.</p>
{% else %}<p>Start with the free plan.</p>{% endif %}
<p>{{ "%d%%"|format(42) }} of readers reply. {{ items|map(attribute='title')|join(', ') }}</p>"""

CONTEXT: dict[str, Any] = {
    "lead": {"first_name": "dana", "company": "Acme <GmbH>", "attributes": {"size": "51-200"}},
    "campaign": {"name": "The 2027 guide"},
    "items": [{"title": f"Question {i}", "summary": "A longer answer that gets cut " * 3}
              for i in range(8)],
}


def _once(render: Any, renders: int) -> float:
    start = time.perf_counter()
    for _ in range(renders):
        render()
    return renders / (time.perf_counter() - start)


def run(ctx: Context) -> list[Row]:
    from nurture.sandbox import MailSandbox, bounded

    renders = env_int("BENCH_TEMPLATE_RENDERS", 5_000)
    autoescape = select_autoescape(default_for_string=True)
    plain = SandboxedEnvironment(autoescape=autoescape).from_string(TEMPLATE)
    budgeted = MailSandbox(autoescape=autoescape).from_string(TEMPLATE)
    assert plain.render(CONTEXT) == budgeted.render(CONTEXT)  # same email either way

    def with_budget() -> str:
        with bounded():
            return budgeted.render(CONTEXT)

    base = got = 0.0
    for _ in range(5):  # interleaved, best of five each: a busy machine slows both alike
        base = max(base, _once(lambda: plain.render(CONTEXT), renders))
        got = max(got, _once(with_budget, renders))
    ratio = got / base
    return [
        Row("template render, plain Jinja sandbox (baseline)", "—", f"{base:,.0f} renders/s",
            None, None),
        Row("template render, budgeted MailSandbox", "≥ 0.5×", f"{got:,.0f} renders/s", ratio,
            ratio >= 0.5),
    ]
