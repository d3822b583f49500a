"""The editor's WTForms: rule rows are sub-forms in lists; `Rules.from_dict` does the real
validation (patterns, fields, numbers) so every error names its rule."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from nurture.scoring.rules import EVENT_TYPES, FIT_FIELDS, FIT_OPERATORS, GRADES, Rules

BLANK_ROWS = 2


def _event_choices() -> list[SelectChoice]:
    """The built-in event types, then the custom ones other systems have sent (the API)."""
    from app.leads.event_types import custom_names

    custom = custom_names("custom.")
    return ([SelectChoice("", "—")] + [SelectChoice(t, t.replace("_", " ")) for t in EVENT_TYPES]
            + [SelectChoice(t, t.replace("_", " ")) for t in custom])


class FitRuleForm(Form):
    field = StringField("Field", validators=[Length(max=80)],
                        description=f"{', '.join(FIT_FIELDS)} or attributes.<name>")
    # Plain tests first ("contains" for a new row); the regular expression is the last choice.
    op = SelectField("Test", choices=[SelectChoice(k, v) for k, v in FIT_OPERATORS.items()])
    value = StringField("Value", validators=[Length(max=500)])
    points = StringField("Points", validators=[Length(max=10)])
    remove = BooleanField("Remove")

    def is_blank(self) -> bool:
        return not any((f.data or "").strip() for f in (self.field, self.value, self.points))


class _FilterForm(Form):
    event_type = SelectField("Event", choices=_event_choices)
    url_pattern = StringField("URL pattern", validators=[Length(max=300)])
    # Pickers (app.pickers): an id, a chosen suggestion or an exact name; the view resolves them.
    form_id = StringField("Form", validators=[Length(max=400)])
    campaign_id = StringField("Campaign", validators=[Length(max=400)])
    step_id = StringField("Email", validators=[Length(max=400)])
    send_id = HiddenField(validators=[Length(max=20)])  # one send: kept as saved, not edited
    remove = BooleanField("Remove")

    def is_blank(self) -> bool:
        return not (self.event_type.data or "")


class EngagementRuleForm(_FilterForm):
    points = StringField("Points", validators=[Length(max=10)])
    daily_cap = StringField("Daily cap", validators=[Length(max=10)])


class InstantRuleForm(_FilterForm):
    min_grade = SelectField("Fit at least", choices=[SelectChoice("", "any")]
                            + [SelectChoice(g, g) for g in GRADES[:-1]])
    within_days = StringField("Within days", validators=[Length(max=5)])


class RulesForm(FlaskForm):
    fit = FieldList(FormField(FitRuleForm))
    engagement = FieldList(FormField(EngagementRuleForm))
    half_life_days = StringField("Half-life (days)", validators=[Length(max=10)])
    grade_a = StringField("A from", validators=[Length(max=10)])
    grade_b = StringField("B from", validators=[Length(max=10)])
    grade_c = StringField("C from", validators=[Length(max=10)])
    grade_d = StringField("D from", validators=[Length(max=10)])
    note = StringField("What changed", validators=[Optional(), Length(max=500)])
    save = SubmitField("Save as a new version")


class ThresholdsForm(FlaskForm):
    mql_grade = SelectField("Fit grade at least", choices=[SelectChoice(g, g) for g in GRADES])
    mql_engagement = StringField("Engagement at least", validators=[Length(max=10)])
    instant = FieldList(FormField(InstantRuleForm))
    note = StringField("What changed", validators=[Optional(), Length(max=500)])
    preview = SubmitField("Preview")
    save = SubmitField("Save as a new version")


class WhatIfForm(FlaskForm):
    mql_grade = SelectField("Fit grade at least", choices=[SelectChoice(g, g) for g in GRADES])
    mql_engagement = StringField("Engagement at least", validators=[DataRequired(),
                                                                    Length(max=10)])
    version = SelectField("Rules", choices=[], validate_choice=True,
                          description="“Active, with these”: the active rules with the fit grade "
                                      "and engagement given here. Or a saved rule set, whole, "
                                      "with its own thresholds.")
    days = IntegerField("Replay the last", default=90, validators=[NumberRange(1, 365)],
                        description="days of events (1 to 365)")
    run = SubmitField("Run the what-if")


class RestoreForm(FlaskForm):
    submit = SubmitField("Make a new version from this one")


PICKED = {"form_id": "form", "campaign_id": "campaign", "step_id": "email"}


def _value_text(rule: dict[str, Any]) -> str:
    value = rule.get("value")
    if isinstance(value, (list, tuple)):
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return "" if value is None else str(value)


def _num(value: Any) -> str:
    return "" if value is None else f"{float(value):g}"


def rules_form_data(rules: Rules) -> dict[str, Any]:
    data = rules.to_dict()
    return {
        "fit": [{**r, "value": _value_text(r), "points": str(r["points"])} for r in data["fit"]],
        "engagement": [{**r, "points": _num(r["points"]), "daily_cap": _num(r["daily_cap"])}
                       for r in data["engagement"]],
        "half_life_days": _num(rules.half_life_days),
        **{f"grade_{g.lower()}": str(v) for g, v in zip("ABCD", rules.grade_bands)},
    }


def thresholds_form_data(rules: Rules) -> dict[str, Any]:
    data = rules.to_dict()
    return {"mql_grade": rules.mql_grade, "mql_engagement": _num(rules.mql_engagement),
            "instant": [{**r, "within_days": str(r["within_days"])} for r in data["instant"]]}


def add_blank_rows(*lists: FieldList) -> None:
    for entries in lists:
        for _ in range(BLANK_ROWS):
            entries.append_entry()


def kept_rows(entries: FieldList) -> list[tuple[int, dict[str, Any]]]:
    """(row number from 0, values) of the rows to keep: not blank, not marked for removal."""
    rows = []
    for number, entry in enumerate(entries):
        sub = entry.form
        if sub.remove.data or sub.is_blank():
            continue
        values = {name: f.data for name, f in sub._fields.items() if name != "remove"}
        rows.append((number, values))
    return rows
