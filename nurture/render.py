"""Turning a marketer's email step into a safe, complete email for one lead.

Marketer templates run in Jinja's sandbox (`nurture.sandbox`: bounded work and size) with
autoescaping on, so neither a template nor a lead's own data (a name, a company) can reach
Python internals or inject markup. The body is
Markdown (or HTML), converted, rendered, then sanitised with nh3; our layout adds the postal
address and the unsubscribe link (the marketer cannot remove them), CSS is inlined, and a plain
text part is derived from the HTML.

Pipeline: Markdown → HTML (on the template source, so lead data is never read as Markdown)
→ sandboxed Jinja render → nh3 sanitise (links passed through the tracking hook, `tracker_for`)
→ layout → css_inline.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

import css_inline
import markdown
import nh3
from flask import current_app, render_template
from jinja2 import TemplateError, TemplateSyntaxError, select_autoescape
from jinja2.exceptions import SecurityError
from markupsafe import Markup

from app import mail
from app.leads.models import Lead
from app.mail.message import parse_address
from nurture.models import Step, StepKind
from nurture.sandbox import MAX_OUTPUT, MailSandbox, TooMuchWork, bounded

LinkRewriter = Callable[[str], str]
SAFE_STYLE_PROPERTIES = {
    "color", "background-color", "font-weight", "font-style", "font-size", "text-align",
    "text-decoration", "margin", "padding", "border", "width", "max-width",
}


LAYOUT = "nurture/email/layout.html"


_INLINER = css_inline.CSSInliner()  # the default settings, built once per process
_html_env = MailSandbox(autoescape=select_autoescape(default_for_string=True))
_text_env = MailSandbox(autoescape=False)  # subjects are plain text, never HTML


class TemplateProblem(ValueError):
    """The marketer's template cannot be rendered; the message says why, for the editor."""


@dataclass
class Rendered:
    subject: str
    html: str
    text: str
    unsubscribe_url: str


def lead_context(lead: Lead) -> dict[str, Any]:
    """What a template may read about the lead: plain values, never the ORM object."""
    return {
        "first_name": lead.first_name or "", "last_name": lead.last_name or "",
        "full_name": lead.full_name, "company": lead.company or "",
        "job_title": lead.job_title or "", "country": lead.country or "",
        "email": lead.email_display or lead.email or "", "stage": lead.stage or "",
        "attributes": dict(lead.attributes or {}),
    }


def campaign_context(campaign_id: int | None) -> dict[str, Any]:
    if campaign_id is None:
        return {}
    from app.db import db
    from campaigns.models import Campaign  # a model, not a view: allowed across packages

    campaign = db.session.get(Campaign, campaign_id)
    return {"id": campaign.id, "name": campaign.name} if campaign else {}


SAMPLE_CAMPAIGN = {"id": 0, "name": "Sample campaign"}


@dataclass(frozen=True)
class PreviewCampaign:
    """The campaign a preview or test send is rendered with, and where it came from."""

    context: dict[str, Any]
    source: str  # "chosen", "enrollment", "activity" or "sample"


def preview_campaign(step: Step, lead: Lead | None,
                     chosen_id: int | None = None) -> PreviewCampaign:
    """`{{ campaign.* }}` for a preview or a test send, so it shows what a lead would get:
    the campaign chosen for the preview, else the one of the lead's enrollment in this
    sequence, else the campaign of the lead's latest activity (the one an enrollment from a
    form would carry), else a sample campaign (never an empty one)."""
    import sqlalchemy as sa

    from app.db import db
    from app.leads.models import Event
    from nurture.models import Enrollment

    candidates: list[tuple[str, int | None]] = [("chosen", chosen_id)]
    if lead is not None and lead.id:
        candidates.append(("enrollment", db.session.scalar(
            sa.select(Enrollment.campaign_id).where(
                Enrollment.lead_id == lead.id, Enrollment.sequence_id == step.sequence_id,
                Enrollment.campaign_id.is_not(None))
            .order_by(Enrollment.id.desc()).limit(1))))
        candidates.append(("activity", db.session.scalar(
            sa.select(Event.campaign_id).where(Event.lead_id == lead.id,
                                               Event.campaign_id.is_not(None))
            .order_by(Event.occurred_at.desc(), Event.id.desc()).limit(1))))
    for source, campaign_id in candidates:
        context = campaign_context(campaign_id)
        if context:
            return PreviewCampaign(context, source)
    return PreviewCampaign(dict(SAMPLE_CAMPAIGN), "sample")


def _asset_link_for(lead: Lead) -> Callable[[int], str]:
    """`asset_link(asset_id)` in templates. Campaigns owns signed download links: it can set
    `app.extensions["nurture_asset_link"] = f(asset_id, lead_id) -> url`."""
    provider = current_app.extensions.get("nurture_asset_link")

    def asset_link(asset_id: int) -> str:
        return provider(int(asset_id), lead.id) if provider else ""

    return asset_link


def tracker_for(send_id: int | None, unsubscribe_url: str, *, fresh: bool = False) -> Any:
    """The tracking hook. Tracking sets `app.extensions["nurture_tracker"] =
    factory(send_id, unsubscribe_url)` returning an object with `rewrite(url) -> url` (every
    http(s) link of the body goes through it) and, optionally, `pixel_url()` and
    `honeypot_url()` (added to the layout). Without it, or for previews, links are unchanged.

    `fresh` (the chunk runner, `build_new_send_email`): the send was claimed just now, so it
    has no links yet, and the caller writes them on its own connection: the factory is called
    with `fresh=True` and its tracker keeps new links for the caller's `write(connection)` and,
    after the commit, `links.publish(tracker.deferred_links())`, instead of adding them to the
    session."""
    factory = current_app.extensions.get("nurture_tracker")
    if factory is None or send_id is None:
        return None
    if fresh:
        return factory(send_id, unsubscribe_url, fresh=True)
    return factory(send_id, unsubscribe_url)


def tracking_allowed(lead: Lead) -> bool:
    """False when the lead refused tracking (`attributes["tracking_consent"]` is False, set by a
    consent field or an import): then no open pixel, and links go straight to their target."""
    return (lead.attributes or {}).get("tracking_consent") not in (False, "false", "no", "0")


_JINJA_TAGS = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


def _body_source(step: Step) -> str:
    """The body as an HTML template. Markdown would read `__class__` or `a * b` inside Jinja
    tags as emphasis, so tags are set aside as placeholders while Markdown runs."""
    if step.body_format == "html":
        return step.body or ""
    return _markdown_template(step.body or "")


# Per step version, what does not depend on the lead is worked out once per process: the
# template's Markdown conversion and its compiled form. Keyed by the source text itself, so an
# edited step is a new entry (never a stale one); lead data only ever enters at render time.
@functools.lru_cache(maxsize=512)
def _markdown_template(body: str) -> str:
    tags: list[str] = []

    def park(match: re.Match[str]) -> str:
        tags.append(match.group(0))
        return f"kindlingtag{len(tags) - 1}x"

    html = markdown.markdown(_JINJA_TAGS.sub(park, body), extensions=["sane_lists"])
    return re.sub(r"kindlingtag(\d+)x", lambda m: tags[int(m.group(1))], html)


def warm_up() -> None:
    """Load what the first Markdown conversion would (its extension registry), so a process
    that forks workers pays for it once; see nurture.preload."""
    markdown.Markdown(extensions=["sane_lists"])


@functools.lru_cache(maxsize=1024)
def _compiled(env: MailSandbox, source: str) -> Any:
    """The compiled template (syntax errors raise, and are not cached)."""
    return env.from_string(source)


def _sanitise(html: str, rewrite: LinkRewriter) -> str:
    def attribute_filter(tag: str, attribute: str, value: str) -> str | None:
        if tag == "a" and attribute == "href" and value.startswith(("http://", "https://")):
            return rewrite(value)
        return value

    return nh3.clean(
        html,
        attributes={"*": {"style", "title"}, "a": {"href"}, "img": {"src", "alt", "width",
                                                                    "height"},
                    "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"}},
        filter_style_properties=SAFE_STYLE_PROPERTIES,
        url_schemes={"http", "https", "mailto"},
        attribute_filter=attribute_filter,
    )


def _bounded(template: Any, context: dict[str, Any]) -> str:
    """Render within the sandbox's work budget (`nurture.sandbox`) and the output bound."""
    parts, size = [], 0
    with bounded():
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise TemplateProblem(f"the email is longer than {MAX_OUTPUT:,} characters")
            parts.append(chunk)
    return "".join(parts)


def _render(env: MailSandbox, source: str, context: dict[str, Any]) -> str:
    try:
        return _bounded(_compiled(env, source), context)
    except TemplateProblem:
        raise
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"line {exc.lineno}: {exc.message}") from None
    except TooMuchWork as exc:
        raise TemplateProblem(str(exc)) from None
    except SecurityError as exc:
        raise TemplateProblem(f"not allowed: {exc}") from None
    except RecursionError:
        raise TemplateProblem("the template calls itself too deep (a macro that never stops "
                              "calling itself?)") from None
    except MemoryError:
        raise TemplateProblem("the template builds something too large for an email") from None
    except TemplateError as exc:
        raise TemplateProblem(str(exc)) from None
    except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
        # A template can divide by zero or compare a str with an int. Anything else (the
        # database, the network) is not the template's fault: it propagates and RQ retries.
        raise TemplateProblem(f"{type(exc).__name__}: {exc}") from None


def render_step(step: Step, lead: Lead, *, unsubscribe_url: str, send_id: int | None = None,
                campaign_id: int | None = None,
                campaign: dict[str, Any] | None = None) -> Rendered:
    """Subject, HTML and text of an email step for `lead`, with the campaign `campaign_id`
    (or the ready `campaign` context, for previews). Raises TemplateProblem."""
    tracker = tracker_for(send_id, unsubscribe_url) if tracking_allowed(lead) else None
    if campaign is None:
        campaign = campaign_context(campaign_id)
    return _render_for(step, lead, unsubscribe_url, campaign, tracker)


def _render_for(step: Step, lead: Lead, unsubscribe_url: str, campaign: dict[str, Any],
                tracker: Any) -> Rendered:
    context = {"lead": lead_context(lead), "campaign": campaign,
               "asset_link": _asset_link_for(lead)}
    subject = " ".join(_render(_text_env, step.subject or "", context).split())
    rewrite = tracker.rewrite if tracker is not None else (lambda url: url)
    body = _sanitise(_render(_html_env, _body_source(step), context), rewrite)
    postal = current_app.config.get("POSTAL_ADDRESS") or ""
    page = render_template(
        LAYOUT, subject=subject, body=Markup(body), postal_address=postal,
        unsubscribe_url=unsubscribe_url,
        pixel_url=getattr(tracker, "pixel_url", lambda: None)(),
        honeypot_url=getattr(tracker, "honeypot_url", lambda: None)())
    text = html_to_text(body).strip()
    text += f"\n\n--\n{postal}\nUnsubscribe: {unsubscribe_url}\n"
    return Rendered(subject=subject, html=_INLINER.inline(page), text=text,
                    unsubscribe_url=unsubscribe_url)


def unsubscribe_headers(unsubscribe_url: str, token: str) -> dict[str, str]:
    """RFC 2369 / RFC 8058: one-click unsubscribe for mailbox providers."""
    _, sender = parse_address(current_app.config["MAIL_FROM"])
    mailto = f"mailto:{sender}?subject={quote('unsubscribe ' + token)}"
    return {"List-Unsubscribe": f"<{unsubscribe_url}>, <{mailto}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def build_email(step: Step, lead: Lead, *, send_id: int | None, enrollment_id: int | None,
                campaign_id: int | None = None, to: str | None = None,
                subject_prefix: str = "", preview: bool = False,
                campaign: dict[str, Any] | None = None) -> mail.Email:
    """The complete Email for the mail backend. `custom_args` carry opaque ids only.

    `preview` (tests to a marketer): the unsubscribe link is inert, so trying it changes nothing.
    `campaign`: a ready campaign context instead of `campaign_id` (tests, `preview_campaign`).
    """
    from nurture import unsubscribe

    token = "preview" if preview else unsubscribe.make_token(lead.id, send_id)
    url = unsubscribe.url_for_token(token)
    rendered = render_step(step, lead, unsubscribe_url=url, send_id=send_id,
                           campaign_id=campaign_id, campaign=campaign)
    return _email(lead, rendered, token, send_id, enrollment_id, to, subject_prefix)


def build_new_send_email(step: Step, lead: Lead, *, send_id: int, enrollment_id: int,
                         campaign: dict[str, Any]) -> tuple[mail.Email, Any]:
    """`build_email` for a send claimed just now by the chunk runner, which read the lead and
    its campaign (`campaign_context`'s dict) itself. Returns the email and its tracker (None
    without tracking): the caller writes the tracker's links (`write(connection)`) in the
    claim's transaction and publishes them once that commits (`deferred_links()`)."""
    from nurture import unsubscribe

    token = unsubscribe.make_token(lead.id, send_id)
    url = unsubscribe.url_for_token(token)
    tracker = tracker_for(send_id, url, fresh=True) if tracking_allowed(lead) else None
    rendered = _render_for(step, lead, url, campaign, tracker)
    return _email(lead, rendered, token, send_id, enrollment_id, None, ""), tracker


def _email(lead: Lead, rendered: Rendered, token: str, send_id: int | None,
           enrollment_id: int | None, to: str | None, subject_prefix: str) -> mail.Email:
    args = {"send_id": str(send_id), "enrollment_id": str(enrollment_id)} if send_id else {}
    return mail.new_email(
        to=to or lead.email_display or lead.email,
        subject=subject_prefix + rendered.subject,
        html=rendered.html,
        text=rendered.text,
        headers=unsubscribe_headers(rendered.unsubscribe_url, token),
        custom_args=args,
        categories=["nurture"],
    )


def sample_lead() -> Lead:
    """A made-up lead for validating templates (never added to the session)."""
    return Lead(id=0, email="sample@example.com", email_display="sample@example.com",
                first_name="Sam", last_name="Sample", company="Example Ltd",
                job_title="Head of Examples", country="GB", stage="lead", attributes={})


def validate(step: Step) -> list[str]:
    """What is wrong with a step, in words a marketer can act on; [] when it is fine."""
    from nurture import steps as step_rules

    if step.kind != StepKind.EMAIL.value:
        return step_rules.structural_errors(step)
    errors = []
    if not (step.subject or "").strip():
        errors.append("The subject is empty.")
    if not (step.body or "").strip():
        errors.append("The body is empty.")
    lead = sample_lead()
    context = {"lead": lead_context(lead), "campaign": dict(SAMPLE_CAMPAIGN),
               "asset_link": lambda asset_id: "https://example.com/asset"}
    for part, env, raw, source in (
            ("Subject", _text_env, step.subject or "", step.subject or ""),
            ("Body", _html_env, step.body or "", None)):
        try:
            env.parse(raw)  # syntax first, on what the marketer wrote (their line numbers)
            _render(env, source if source is not None else _body_source(step), context)
        except TemplateSyntaxError as exc:
            errors.append(f"{part}: line {exc.lineno}: {exc.message}")
        except TemplateProblem as exc:
            errors.append(f"{part}: {exc}")
    return errors


_SPACES = re.compile(r"\s+")


class _TextExtractor(HTMLParser):
    BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table",
              "ul", "ol", "blockquote", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")
        if tag == "a":
            self.href = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self.href:
            self.parts.append(f" ({self.href})")
            self.href = None
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(_SPACES.sub(" ", data))


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    parser.feed(html)
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()
