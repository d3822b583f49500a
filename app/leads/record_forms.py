"""Forms of the lead page (CSRF on every one): profile, stage move, note, task."""

from __future__ import annotations

import pycountry
from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from app.leads.service import PROFILE_LENGTHS


def _country(form: FlaskForm, field: StringField) -> None:
    value = (field.data or "").strip().upper()
    if value and pycountry.countries.get(alpha_2=value) is None:
        raise ValidationError("Use a two-letter country code, e.g. GB, US, DE.")
    field.data = value


class ProfileForm(FlaskForm):
    first_name = StringField("First name", validators=[Length(max=PROFILE_LENGTHS["first_name"])])
    last_name = StringField("Last name", validators=[Length(max=PROFILE_LENGTHS["last_name"])])
    company = StringField("Company", validators=[Length(max=PROFILE_LENGTHS["company"])])
    job_title = StringField("Job title", validators=[Length(max=PROFILE_LENGTHS["job_title"])])
    phone = StringField("Phone", validators=[Length(max=PROFILE_LENGTHS["phone"])])
    country = StringField("Country", validators=[Length(max=2), _country],
                          description="Two-letter code, e.g. GB.")


class StageForm(FlaskForm):
    stage = SelectField("Move to", validate_choice=False)
    reason = TextAreaField("Reason", validators=[DataRequired("Say why the lead is moving."),
                                                 Length(max=2000)],
                           description="Required: kept in the lead's history.")


class NoteForm(FlaskForm):
    body = TextAreaField("Note", validators=[DataRequired("Write the note first."),
                                             Length(max=10000)])


class TaskForm(FlaskForm):
    title = StringField("Task", validators=[DataRequired("Say what is to be done."),
                                            Length(max=300)])
    due_at = DateTimeLocalField("Due (UTC)", format="%Y-%m-%dT%H:%M",
                                validators=[DataRequired("Give the due date and time.")])
    owner_id = SelectField("Owner", coerce=int, validators=[Optional()],
                           description="Gets a reminder email when the task falls due.")
