"""Public pages: unsubscribe. (Tracking endpoints belong to nurture's tracking module.)

`/u/<token>`:
- GET shows a confirmation button and the lead's choices (stop only the series the email came
  from, or every email) and changes nothing: mail scanners and link prefetchers follow every
  link in an email, and must not unsubscribe anyone.
- POST unsubscribes and answers 200 with a page (no redirect). That covers both the RFC 8058
  one-click POST a mailbox provider sends (body `List-Unsubscribe=One-Click`, no cookies, no
  CSRF token) and the confirm button on our page.

Both POSTs are exempt from CSRF on purpose: the signed token in the URL is the authority (only
the recipient of the email has it), a one-click POST can never carry a CSRF token, and the worst a
forged cross-site POST could do is what the token's holder may do anyway: unsubscribe.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request

from app.db import db
from app.extensions import csrf
from app.leads.models import Lead
from app.privacy import consent
from app.privacy.models import ConsentPurpose
from nurture import unsubscribe as unsub
from nurture.enrollment import end
from nurture.models import Enrollment, Send

bp = Blueprint("nurture_public", __name__, template_folder="templates")


def _lead_for(token: str) -> tuple[Lead, int | None]:
    found = unsub.read_token(token)
    lead = db.session.get(Lead, found[0]) if found else None
    if lead is None or found is None:
        abort(404)
    return lead, found[1]


def _series_of(lead: Lead, send_id: int | None) -> Enrollment | None:
    """The live journey the email came from, when the token names a send of this lead."""
    send = db.session.get(Send, send_id) if send_id is not None else None
    if send is None or send.lead_id != lead.id or not send.enrollment.is_live:
        return None
    return send.enrollment


def _granted(lead: Lead) -> list[ConsentPurpose]:
    """The purposes this person agreed to: each can be withdrawn on its own."""
    return [s.purpose for s in consent.states(lead.id) if s.granted]


@bp.route("/u/<token>", methods=["GET"])
def unsubscribe_page(token: str):
    lead, send_id = _lead_for(token)
    return render_template("nurture/unsubscribe.html", token=token, done=None,
                           already=lead.unsubscribed_at is not None,
                           series=_series_of(lead, send_id), purposes=_granted(lead))


@bp.route("/u/<token>", methods=["POST"])
@csrf.exempt
def unsubscribe_post(token: str):
    """One-click (RFC 8058) or the page's "everything" button: unsubscribe from all. The page's
    other choice, `scope=series`, only ends the journey the email came from."""
    lead, send_id = _lead_for(token)
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    series = _series_of(lead, send_id)
    if not one_click and request.form.get("scope") == "series":
        if series is not None:  # None: that journey is over already, nothing more to stop
            end(series, "left this series from the unsubscribe page", finished=False)
            db.session.commit()
        return render_template("nurture/unsubscribe.html", token=token, done="series",
                               already=False, series=series)
    if not one_click and request.form.get("scope") == "purposes":
        chosen = set(request.form.getlist("purpose"))
        withdrawn = [p for p in _granted(lead) if str(p.id) in chosen]
        for purpose in withdrawn:
            consent.withdraw(lead, purpose, source="unsubscribe", ip=(request.remote_addr or ""))
        db.session.commit()
        return render_template("nurture/unsubscribe.html", token=token, done="purposes",
                               already=False, series=None, withdrawn=withdrawn,
                               purposes=_granted(lead))
    unsub.unsubscribe(lead, source="one-click" if one_click else "unsubscribe page",
                      send_id=send_id)
    consent.withdraw_all(lead, source="unsubscribe", ip=(request.remote_addr or ""))
    db.session.commit()
    return render_template("nurture/unsubscribe.html", token=token, done="all", already=False,
                           series=None)
