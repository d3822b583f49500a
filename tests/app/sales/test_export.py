"""CSV export: formula-safe cells, filters, columns, a file, streaming in batches."""

import csv
import io
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.db import db, utcnow
from app.leads.models import Event, Lead
from app.leads.service import change_stage, record_event, upsert_lead
from app.sales import export
from tests.helpers import make_user

EVIL = ['=HYPERLINK("http://evil.test","x")', "+1+1", "-2+3", "@SUM(1)", "\tTabbed",
        "\rReturn"]


def _lead(email, stage="mql", fit=50, engagement=10.0, **values):
    lead = upsert_lead(email, values, source="test").lead
    lead.fit_score, lead.engagement_score = fit, engagement
    if stage != "lead":
        change_stage(lead, stage, reason="test", actor="test")
    db.session.commit()
    return lead


def _read(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def _cli(runner, *args) -> list[list[str]]:
    result = runner.invoke(args=["leads", "export", *args])
    assert result.exit_code == 0, result.output
    return _read(result.output)


def test_every_formula_looking_value_reads_back_as_text(app, runner):
    evil = _lead("=1+1@example.com", first_name=EVIL[0], last_name=EVIL[1], company=EVIL[2],
                 job_title=EVIL[3])
    evil.phone = EVIL[4]  # set directly: the upsert trims surrounding whitespace
    _lead("plain@example.com").company = EVIL[5]
    db.session.commit()
    rows = _cli(runner, "--columns", "email,first_name,last_name,company,job_title,phone")
    header, evil, plain = rows
    assert header == ["email", "first_name", "last_name", "company", "job_title", "phone"]
    assert evil == ["'=1+1@example.com", "'" + EVIL[0], "'+1+1", "'-2+3", "'@SUM(1)",
                    "'\tTabbed"]
    assert plain[3] == "'\rReturn"
    assert plain[0] == "plain@example.com"  # ordinary values are left alone


def test_filters_stage_scores_owner_campaign_and_dates(app, runner):
    sam = make_user("sam@example.com", "sales")
    hot = _lead("hot@example.com", fit=80, engagement=50)
    hot.owner_id = sam.id
    record_event(hot, "form_submitted", campaign_id=7,
                 data={"utm": {"utm_source": "linkedin"}})
    _lead("cold@example.com", fit=10, engagement=1)
    _lead("won@example.com", stage="sql", fit=90, engagement=90)
    _lead("new@example.com", stage="lead", fit=99)
    db.session.commit()

    def emails(*args):
        return sorted(r[0] for r in _cli(runner, "--columns", "email", *args)[1:])

    assert emails() == ["cold@example.com", "hot@example.com", "won@example.com"]
    assert emails("--stage", "mql") == ["cold@example.com", "hot@example.com"]
    assert emails("--stage", "sql", "--stage", "lead") == ["new@example.com", "won@example.com"]
    assert emails("--min-fit", "50") == ["hot@example.com", "won@example.com"]
    assert emails("--min-engagement", "60") == ["won@example.com"]
    assert emails("--owner", "SAM@example.com") == ["hot@example.com"]
    assert emails("--campaign", "7") == ["hot@example.com"]
    today = utcnow().date()
    assert emails("--since", (today + timedelta(days=1)).isoformat()) == []
    assert len(emails("--since", today.isoformat(), "--until", today.isoformat())) == 3

    rows = _cli(runner, "--columns", "email,utm_source,fit_score,engagement_score,owner",
                "--stage", "mql", "--min-fit", "50")
    assert rows == [["email", "utm_source", "fit_score", "engagement_score", "owner"],
                    ["hot@example.com", "linkedin", "80", "50.0", "sam@example.com"]]
    # Its campaign's events pruned (old events go after their roll-up), the lead still came
    # through the campaign: the export says so, as the leads list does (lead_campaigns).
    db.session.execute(sa.delete(Event).where(Event.campaign_id == 7))
    db.session.commit()
    assert emails("--campaign", "7") == ["hot@example.com"]


def test_unknown_columns_are_refused(app, runner):
    result = runner.invoke(args=["leads", "export", "--columns", "email,password_hash"])
    assert result.exit_code != 0 and "unknown column" in result.output


def test_output_file_and_bom(app, runner, tmp_path):
    _lead("sofía@example.com", first_name="Sofía")
    target = tmp_path / "leads.csv"
    result = runner.invoke(args=["leads", "export", "--output", str(target), "--bom",
                                 "--columns", "email,first_name"])
    assert result.exit_code == 0 and "Wrote 1 lead to" in result.output
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert _read(raw.decode("utf-8-sig")) == [["email", "first_name"],
                                              ["sofía@example.com", "Sofía"]]


def test_the_cli_reads_in_batches(app, runner, monkeypatch):
    for i in range(7):
        _lead(f"lead{i}@example.com")
    monkeypatch.setattr(export, "BATCH_SIZE", 3)
    sizes = [len(b) for b in export.batches(export.Filters(columns=("email",)))]
    assert sizes == [3, 3, 1]
    seen = []
    real = export.batches
    monkeypatch.setattr(export, "batches", lambda f: (seen.append(len(b)) or b for b in real(f)))
    assert len(_cli(runner, "--columns", "email")) == 8
    assert seen == [3, 3, 1]


def test_the_admin_export_is_a_streamed_download(app, client, auth):
    _lead("x@example.com", company="@SUM(1)")
    auth.login_as("sales")
    response = client.get("/sales/export.csv?stage=mql&columns=email,company")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    assert _read(response.get_data(as_text=True)) == [["email", "company"],
                                                      ["x@example.com", "'@SUM(1)"]]
    assert client.get("/sales/export.csv?columns=nope").status_code == 400
    excel = client.get("/sales/export.csv?stage=mql&columns=email&bom=1")
    assert excel.data.startswith(b"\xef\xbb\xbfemail\r\n")
    assert not client.get("/sales/export.csv?columns=email").data.startswith(b"\xef")
    assert client.get("/sales/export").status_code == 200


def test_export_needs_a_signed_in_staff_user(app, client):
    assert client.get("/sales/export.csv").status_code == 302


@pytest.mark.parametrize("value, expected", [
    ("=1+1", "'=1+1"), ("-5", "'-5"), ("\nx", "'\nx"), ("a=b", "a=b"), (None, ""), (3, "3"),
])
def test_defuse(value, expected):
    assert export.defuse(value) == expected


def test_lead_model_unchanged_by_export(app, runner):
    lead = _lead("keep@example.com", company="=X")
    _cli(runner)
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).company == "=X"


def test_the_export_form_picks_the_campaign_by_name_and_says_what_is_wrong(app, client, auth):
    import re

    from campaigns.models import Campaign

    spring = Campaign(name="Spring launch", slug="spring")
    db.session.add_all([spring, Campaign(name="Autumn webinar", slug="autumn")])
    db.session.flush()
    record_event(_lead("in@example.com"), "form_submitted", campaign_id=spring.id)
    _lead("out@example.com")
    db.session.commit()
    auth.login_as("marketer")

    page = client.get("/sales/export").get_data(as_text=True)
    assert "Campaign id" not in page
    choices = re.search(r'<select id="campaign" name="campaign"[^>]*>(.*?)</select>', page, re.DOTALL)
    assert choices and f'<option value="{spring.id}">Spring launch</option>' in choices.group(1)
    assert '<label for="campaign">Campaign</label>' in page

    chosen = client.get(f"/sales/export?download=1&stage=mql&columns=email&campaign={spring.id}")
    assert chosen.status_code == 302 and "/sales/export.csv?" in chosen.location
    assert _read(client.get(chosen.location).get_data(as_text=True)) == [["email"],
                                                                         ["in@example.com"]]
    typed = client.get("/sales/export?download=1&stage=mql&columns=email&campaign=spring+LAUNCH")
    assert _read(client.get(typed.location).get_data(as_text=True))[1:] == [["in@example.com"]]

    wrong = client.get("/sales/export?download=1&stage=mql&columns=email&campaign=Nope"
                       "&min_fit=lots&since=2026-05-01&until=2026-04-01")
    assert wrong.status_code == 400
    text = wrong.get_data(as_text=True)
    assert "Nothing was exported." in text and "No campaign matches “Nope”" in text
    assert "A whole number, like 20." in text
    assert "The end date is before the start date." in text
    nothing = client.get("/sales/export?download=1&columns=email").get_data(as_text=True)
    assert "Choose at least one stage." in nothing
