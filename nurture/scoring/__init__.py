"""Scoring and lifecycle: fit × decaying engagement, rules as data, MQL thresholds.

Public interface for other packages:
- `nurture.scoring.explain.explain(lead) -> Breakdown` (`.summary()`, `.to_dict()`,
  `.mql_reason`), the "why" of a lead's score, recomputed from its events.
- MQL moves are `StageChange(actor="scoring")` rows whose reason names the numbers.
"""

from __future__ import annotations

from flask import Flask

DEFAULTS = {
    "SCORING_SWEEP_INTERVAL": 60,  # seconds between sweeps for leads whose job was lost
}


def init_app(app: Flask) -> None:
    """Register scoring's blueprints, jobs, listeners and demo data."""
    import nurture.scoring.models  # noqa: F401  this package's tables
    from app.leads.story import add_story_section
    from app.schedule import add_periodic
    from app.seed import add_seeder
    from app.templating import add_lead_panel, add_nav
    from nurture.scoring import admin, cli, incremental
    from nurture.scoring.explain import render_panel, story_section
    from nurture.scoring.seed import seed_demo

    for name, value in DEFAULTS.items():
        app.config.setdefault(name, value)
    app.register_blueprint(admin.bp)
    app.cli.add_command(cli.scores)
    # Sales reads the rules, thresholds and calibration too (read-only).
    add_nav(app, "scoring.rules", "Scoring", "marketer", "sales")
    add_lead_panel(app, render_panel)
    add_story_section(app, story_section)
    add_periodic(app, "nurture.scoring.jobs.sweep", int(app.config["SCORING_SWEEP_INTERVAL"]),
                 queue="scoring")
    add_seeder(app, seed_demo)
    incremental.init_app(app)
    # The lead core reads engagement as of now and grades by fit with the active rules.
    from app.leads.engagement import set_half_life
    from nurture.scoring.service import active_rules

    set_half_life(app, lambda: active_rules().rules.half_life_days)
    app.extensions["fit_grade_bands"] = lambda: active_rules().rules.grade_bands
    # The Scores report; the score at each handoff (calibration) kept with the rollups; the
    # rule set active at a time, for the Speed report's rejection reasons.
    from app.reports.registry import add_refresh_step, add_report
    from nurture.scoring import calibration, reports

    add_report(app, reports.REPORT)
    add_refresh_step(app, calibration.snapshot_pending)
    app.extensions["report_ruleset_at"] = calibration.ruleset_labels
