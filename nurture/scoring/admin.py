"""Marketer screens (rules editor, thresholds with a what-if preview, version history) and
the staff JSON API for a lead's score breakdown."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from redis.exceptions import RedisError

from app import outbox, pickers, queue
from app.auth.models import Role
from app.auth.roles import staff_required
from app.db import db
from app.leads.models import Lead
from nurture.scoring import calibration, rebuild, service
from nurture.scoring.admin_forms import (
    PICKED,
    RestoreForm,
    RulesForm,
    ThresholdsForm,
    WhatIfForm,
    add_blank_rows,
    kept_rows,
    rules_form_data,
    thresholds_form_data,
)
from nurture.scoring.explain import explain
from nurture.scoring.models import RuleSet, WhatIfRun
from nurture.scoring.rules import RuleError, Rules

log = logging.getLogger(__name__)

bp = Blueprint("scoring", __name__, template_folder="templates")

SECTION_LABELS = {"fit": "Fit rule", "engagement": "Engagement rule",
                  "instant": "Instant-MQL rule"}


class EditorError(Exception):
    def __init__(self, message: str, section: str = "", row: int | None = None):
        super().__init__(message)
        self.message = message
        self.section = section
        self.row = row


def _resolve_picked(section: str, rows: list[tuple[int, dict[str, Any]]]) -> None:
    """Turn what each picker holds (an id, a chosen suggestion, an exact name) into the id
    the rule stores; an id that no longer exists is kept (a rule may outlive what it names)."""
    for row, values in rows:
        for name, kind in PICKED.items():
            try:
                found = pickers.resolve(kind, values.get(name), must_exist=False)
            except pickers.PickError as exc:
                raise EditorError(f"{SECTION_LABELS[section]} {row + 1}: {exc}", section,
                                  row) from None
            values[name] = "" if found is None else str(found)


def _build(definition: dict[str, Any], rows: dict[str, list[int]]) -> Rules:
    """Validate; a RuleError becomes a message naming the row the marketer sees."""
    try:
        return Rules.from_dict(definition)
    except RuleError as exc:
        if exc.section in rows and exc.index is not None:
            row = rows[exc.section][exc.index]
            raise EditorError(f"{SECTION_LABELS[exc.section]} {row + 1}: {exc.message}",
                              exc.section, row) from None
        raise EditorError(str(exc), exc.section) from None


def _editor() -> bool:
    """Marketers (and admins) change the rules; sales reads them."""
    return current_user.has_role(Role.MARKETER)


def _refuse_readers() -> None:
    if request.method == "POST" and not _editor():
        abort(403)


def _save(rules: Rules, note: str) -> RuleSet:
    row = service.save_version(rules, user_id=current_user.id, note=note or "")
    db.session.commit()
    try:
        queue.enqueue("nurture.scoring.jobs.rebuild_all", queue="scoring", job_timeout=3600,
                      description=f"rescore every lead with rules v{row.version}")
        flash(f"Saved as version {row.version}. Every lead is being rescored.", "info")
    except RedisError as exc:
        log.warning("rescoring not enqueued (%s)", exc)
        flash(f"Saved as version {row.version}. Run “flask scores rebuild” to rescore every "
              "lead now.", "info")
    return row


@bp.route("/admin/scoring/", methods=["GET", "POST"])
@staff_required
def rules():
    _refuse_readers()
    active = service.active_rules()
    form = RulesForm()
    if not form.is_submitted():
        form = RulesForm(data=rules_form_data(active.rules))
    error: EditorError | None = None
    if form.validate_on_submit():
        fit_rows = kept_rows(form.fit)
        engagement_rows = kept_rows(form.engagement)
        definition = {
            **active.rules.to_dict(),
            "fit": [values for _, values in fit_rows],
            "engagement": [values for _, values in engagement_rows],
            "half_life_days": form.half_life_days.data,
            "grade_bands": [form.grade_a.data, form.grade_b.data, form.grade_c.data,
                            form.grade_d.data],
        }
        try:
            _resolve_picked("engagement", engagement_rows)  # in place: `definition` has them
            new_rules = _build(definition, {"fit": [n for n, _ in fit_rows],
                                            "engagement": [n for n, _ in engagement_rows]})
        except EditorError as exc:
            error = exc
        else:
            _save(new_rules, form.note.data)
            return redirect(url_for("scoring.rules"))
    elif not form.is_submitted() and _editor():  # readers get no rows to fill in
        add_blank_rows(form.fit, form.engagement)
    failed = error is not None or bool(form.errors)
    return render_template("scoring/rules.html", form=form, error=error, active=active,
                           editor=_editor()), 400 if failed else 200


@bp.route("/admin/scoring/thresholds", methods=["GET", "POST"])
@staff_required
def thresholds():
    _refuse_readers()
    active = service.active_rules()
    form = ThresholdsForm()
    if not form.is_submitted():
        form = ThresholdsForm(data=thresholds_form_data(active.rules))
    error: EditorError | None = None
    preview: dict[str, int] | None = None
    if form.validate_on_submit():
        instant_rows = kept_rows(form.instant)
        definition = {**active.rules.to_dict(), "mql_grade": form.mql_grade.data,
                      "mql_engagement": form.mql_engagement.data,
                      "instant": [values for _, values in instant_rows]}
        try:
            _resolve_picked("instant", instant_rows)  # in place: `definition` has them
            new_rules = _build(definition, {"instant": [n for n, _ in instant_rows]})
        except EditorError as exc:
            error = exc
        else:
            if form.save.data:
                _save(new_rules, form.note.data)
                return redirect(url_for("scoring.thresholds"))
            would, eligible = rebuild.preview(new_rules)
            now, _ = rebuild.preview(active.rules)
            preview = {"would": would, "eligible": eligible, "current": now}
    elif not form.is_submitted() and _editor():  # readers get no rows to fill in
        add_blank_rows(form.instant)
    failed = error is not None or bool(form.errors)
    return render_template("scoring/thresholds.html", form=form, error=error, active=active,
                           preview=preview, editor=_editor()), 400 if failed else 200


@bp.route("/admin/scoring/versions")
@staff_required
def versions():
    rows = db.session.scalars(sa.select(RuleSet).order_by(RuleSet.version.desc())).all()
    return render_template("scoring/versions.html", versions=rows)


@bp.route("/admin/scoring/versions/<int:version>", methods=["GET", "POST"])
@staff_required
def version(version: int):
    _refuse_readers()
    row = db.session.scalar(sa.select(RuleSet).where(RuleSet.version == version)) or abort(404)
    form = RestoreForm()
    if form.validate_on_submit():
        _save(Rules.from_dict(row.definition), f"Restored from version {row.version}")
        return redirect(url_for("scoring.versions"))
    rules = Rules.from_dict(row.definition)
    return render_template("scoring/version.html", version=row, rules=rules, form=form,
                           names=service.rule_names(rules), editor=_editor())


@bp.route("/admin/scoring/calibration", methods=["GET", "POST"])
@staff_required
def calibration_page():
    """Calibration on outcomes, and what-if replays (both teams may run one: it changes
    nothing but adds a run to the list)."""
    active = service.active_rules()
    saved = db.session.scalars(sa.select(RuleSet).order_by(RuleSet.version.desc())).all()
    form = WhatIfForm()
    form.version.choices = [("", "Active, with these")] + [
        (str(v.version), f"Rule set v{v.version}" + (" (active)" if v.active else ""))
        for v in saved]
    if not form.is_submitted():
        form.mql_grade.data = active.rules.mql_grade
        form.mql_engagement.data = f"{active.rules.mql_engagement:g}"
    error = None
    if form.validate_on_submit():
        if form.version.data:
            row = next(v for v in saved if str(v.version) == form.version.data)
            definition, label = dict(row.definition), f"rule set v{row.version}"
        else:
            definition = {**active.rules.to_dict(), "mql_grade": form.mql_grade.data,
                          "mql_engagement": form.mql_engagement.data}
            label = f"fit ≥ {form.mql_grade.data}, engagement ≥ {form.mql_engagement.data}"
        try:
            proposed = Rules.from_dict(definition)
        except RuleError as exc:
            error = str(exc)
        else:
            run = WhatIfRun(created_by_id=current_user.id, days=form.days.data,
                            label=f"{label}, last {form.days.data} days",
                            definition=proposed.to_dict(), status="queued")
            db.session.add(run)
            db.session.flush()
            outbox.add("nurture.scoring.whatif.run", run.id, queue_name="scoring",
                       dedupe_key=f"whatif:{run.id}")
            db.session.commit()
            flash("What-if started: the numbers appear below when the replay is done.", "info")
            return redirect(url_for("scoring.calibration_page"))
    runs = db.session.scalars(sa.select(WhatIfRun).order_by(WhatIfRun.id.desc()).limit(5)).all()
    failed = error is not None or bool(form.errors)
    return render_template("scoring/calibration.html", table=calibration.table(active.rules),
                           active=active, form=form, error=error, runs=runs,
                           running=any(r.status in ("queued", "running") for r in runs)), \
        400 if failed else 200


@bp.route("/admin/api/leads/<int:lead_id>/score")
@staff_required
def lead_score(lead_id: int):
    lead = db.session.get(Lead, lead_id) or abort(404)
    return jsonify(explain(lead).to_dict())
