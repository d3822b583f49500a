"""Leads → Import: upload a CSV, map its columns (with a preview), choose the source, the
consent basis and optionally a sequence, then watch the job's progress bar."""

from __future__ import annotations

import os

import sqlalchemy as sa
from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app import outbox
from app.auth.roles import marketer_required
from app.db import db
from app.leads import imports
from app.leads.bulk import actions
from app.leads.views import bp


def _sequences() -> list:
    action = actions().get("enroll")
    return action.choice[2]() if action is not None and action.choice else []


def _target_choices(imp: imports.LeadImport) -> list[tuple[str, str]]:
    labels = {"email": "Email (required)", "first_name": "First name", "last_name": "Last name",
              "company": "Company", "job_title": "Job title", "phone": "Phone",
              "country": "Country (code or name)"}
    return [(imports.IGNORE, "Leave out"), *labels.items()]


@bp.route("/import", methods=["GET", "POST"])
@marketer_required
def import_upload():
    recent = db.session.scalars(sa.select(imports.LeadImport)
                                .order_by(imports.LeadImport.id.desc()).limit(10)).all()
    if request.method == "POST":
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            flash("Choose a CSV file to upload.", "error")
            return render_template("leads/import_upload.html", recent=recent), 400
        try:
            imp = imports.create(upload.stream, upload.filename, current_user)
        except imports.ImportProblem as exc:
            flash(str(exc), "error")
            return render_template("leads/import_upload.html", recent=recent), 400
        return redirect(url_for("leads.import_page", import_id=imp.id))
    return render_template("leads/import_upload.html", recent=recent)


@bp.route("/import/<int:import_id>", methods=["GET", "POST"])
@marketer_required
def import_page(import_id: int):
    imp = db.session.get(imports.LeadImport, import_id) or abort(404)
    sequences = _sequences()
    if request.method == "POST" and imp.status == "draft":
        mapping = {}
        for index, column in enumerate(imp.columns):
            choice = request.form.get(f"map-{index}", imports.IGNORE)
            if choice == "attr":
                choice = f"attr:{column}"[:60]
            elif choice not in imports.FIELDS:
                choice = imports.IGNORE
            mapping[column] = choice
        imp.mapping = mapping
        imp.source = (request.form.get("source") or "Import").strip()[:100] or "Import"
        basis = request.form.get("consent_basis") or "not recorded"
        imp.consent_basis = basis if basis in imports.CONSENT_BASES else "not recorded"
        imp.consent_text = (request.form.get("consent_text") or "").strip()[:2000]
        sequence = request.form.get("sequence_id") or ""
        imp.sequence_id = int(sequence) if sequence in {str(c.value) for c in sequences} \
            else None
        try:
            imports.check_mapping(mapping)
        except imports.ImportProblem as exc:
            db.session.commit()  # keep what was chosen
            flash(f"Not started: {exc}", "error")
            return _mapping_page(imp, sequences), 400
        imp.status = "queued"
        outbox.add("app.leads.imports.run", imp.id, dedupe_key=f"import:{imp.id}")
        db.session.commit()
        return redirect(url_for("leads.import_page", import_id=imp.id))
    if imp.status == "draft":
        return _mapping_page(imp, sequences)
    return render_template("leads/import_status.html", imp=imp)


def _mapping_page(imp: imports.LeadImport, sequences: list) -> str:
    rows = imports.preview(imp)
    return render_template("leads/import_map.html", imp=imp, rows=rows,
                           targets=_target_choices(imp), sequences=sequences,
                           bases=imports.CONSENT_BASES)


@bp.route("/import/<int:import_id>/errors.csv")
@marketer_required
def import_errors(import_id: int):
    imp = db.session.get(imports.LeadImport, import_id) or abort(404)
    path = imports.errors_path(imp)
    if not os.path.exists(path):
        abort(404)
    with open(path, "rb") as handle:
        data = handle.read()
    name = f"import-{imp.id}-rejected.csv"
    return Response(data, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
