"""Each report number, worked out from the rows directly, against what the report shows."""

from __future__ import annotations

import csv
import io
import statistics
from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa
import time_machine

from app.db import db
from app.leads.models import Event, Lead, StageChange
from app.reports import builtin, query
from app.reports.filters import Filters
from app.reports.models import ReportDaily
from app.reports.rollup import rebuild, refresh
from app.sales.models import Assignment
from tests.app.reports import dataset

FUNNEL = ("mql", "sql", "opportunity", "customer")
ORDER = {s: i for i, s in enumerate(FUNNEL)}


@pytest.fixture
def world(app):
    with time_machine.travel(dataset.NOW, tick=False):
        built = dataset.build()
        refresh()
        yield built


def f(since=date(2026, 6, 1), until=date(2026, 6, 15), **kw) -> Filters:
    return Filters(since=since, until=until, **kw)


# Straight from the rows: an independent count, no report code.

def credited(lead: Lead, world) -> int:
    first = db.session.scalars(sa.select(Event).where(
        Event.lead_id == lead.id, Event.type == "form_submitted")
        .order_by(Event.occurred_at)).first()
    if first is None:
        return 0
    if first.campaign_id:
        return first.campaign_id
    if (first.data.get("utm") or {}).get("utm_campaign", "").lower() == "spring":
        return world.a.id
    return world.b.id if first.data.get("form_id") else 0


def reached_at(lead: Lead, stage: str):
    times = [c.changed_at for c in db.session.scalars(
        sa.select(StageChange).where(StageChange.lead_id == lead.id))
        if c.to_stage in ORDER and ORDER[c.to_stage] >= ORDER[stage]]
    return min(times) if times else None


def in_range(when, since, until) -> bool:
    return when is not None and since <= when.date() <= until


def direct_funnel(world, since, until, mode, campaign=None) -> list[int]:
    leads = [lead for lead in db.session.scalars(sa.select(Lead))
             if campaign is None or credited(lead, world) == campaign]
    visits = sum(1 for e in db.session.scalars(sa.select(Event).where(
        Event.type == "page_viewed", Event.is_bot.is_(False)))
        if in_range(e.occurred_at, since, until) and (campaign is None
                                                      or e.campaign_id == campaign))
    created = [lead for lead in leads if in_range(lead.created_at, since, until)]
    counts = [visits, len(created)]
    for stage in FUNNEL:
        if mode == "cohort":
            counts.append(sum(1 for lead in created if reached_at(lead, stage)))
        else:
            counts.append(sum(1 for lead in leads
                              if in_range(reached_at(lead, stage), since, until)))
    return counts


@pytest.mark.parametrize("mode", ["cohort", "moved"])
def test_funnel_counts_and_rates_match_the_rows(world, mode):
    with time_machine.travel(dataset.NOW, tick=False):
        result = builtin.funnel(f(mode=mode))
        expected = direct_funnel(world, date(2026, 6, 1), date(2026, 6, 15), mode)
        rows = result.table("funnel").rows
        assert [r[1] for r in rows] == expected
        for index in range(1, len(rows)):
            whole = expected[index - 1]
            assert rows[index][2].value == (expected[index] / whole if whole else None)
        by_campaign = {r[0]: r[1:7] for r in result.table("by_campaign").rows}
        for campaign in (world.a, world.b):
            assert by_campaign[campaign.name] == direct_funnel(
                world, date(2026, 6, 1), date(2026, 6, 15), mode, campaign.id)


def test_funnel_known_answers(world):
    """Worked out by hand from the dataset's story."""
    with time_machine.travel(dataset.NOW, tick=False):
        alpha = builtin.funnel(f(campaign_id=world.a.id)).table("funnel").rows
        # 40 visits; leads a1 a2 a3 a4 e1 (embedded, credited by utm) and today's;
        # MQL: a1 a2 a3 e1; SQL: a1 a2 e1; opportunity: a1; customer: a1.
        assert [r[1] for r in alpha] == [40, 6, 4, 3, 1, 1]
        assert [str(r[2]) for r in alpha[1:]] == ["15.0 %", "66.7 %", "75.0 %", "33.3 %",
                                                  "100.0 %"]
        moved = builtin.funnel(f(campaign_id=world.a.id, mode="moved")).table("funnel").rows
        assert [r[1] for r in moved] == [40, 6, 5, 3, 1, 1]  # + the May lead's MQL
        beta = builtin.funnel(f(campaign_id=world.b.id)).table("funnel").rows
        # b1 skipped MQL: it counts as having reached MQL (cumulative), so no rate tops 100 %.
        assert [r[1] for r in beta] == [10, 2, 1, 1, 0, 0]


def test_cost_per_mql_and_repeat_submissions(world):
    with time_machine.travel(dataset.NOW, tick=False):
        rows = {r[0]: r for r in builtin.cost(f()).table("cost").rows}
    alpha, beta = rows["Alpha"], rows["Beta"]
    # Alpha costs 3000 over May 1 - June 29 (60 days); June 1-15 is 15 of them: 750.
    assert alpha[1] == Decimal("750.00") and alpha[3] == "15 of its 60 days"
    assert alpha[4:9] == [6, 1, 4, 3, 1]  # leads, repeat submissions, MQL, SQL, customers
    assert alpha[9] == Decimal("125.00") and alpha[10] == Decimal("187.50")  # per lead, per MQL
    assert alpha[11] == Decimal("250.00") and alpha[12] == Decimal("750.00")
    # Beta has no dates: its whole cost; 2 leads, 1 "MQL" (b1 reached SQL), no customer.
    assert beta[1] == Decimal(1000) and beta[3].startswith("whole cost")
    assert beta[10] == Decimal("1000.00") and beta[12] is None  # no division by zero


def test_speed_median_and_p90_match_the_rows(world):
    with time_machine.travel(dataset.NOW, tick=False):
        result = builtin.speed(f())
        durations = []
        for lead in db.session.scalars(sa.select(Lead)):
            mql = reached_at(lead, "mql")
            if mql and in_range(lead.created_at, date(2026, 6, 1), date(2026, 6, 15)):
                durations.append((mql - lead.created_at).total_seconds() / 3600)
    speed = result.table("speed").rows
    # a1 2 h, a2 10 h, a3 30 h, e1 4 h, b1 5 h (straight to SQL): median 5 h, p90 30 h.
    assert sorted(durations) == [2, 4, 5, 10, 30]
    assert speed[0][1] == 5 and speed[0][2].hours == statistics.median(durations) == 5
    assert speed[0][3].hours == 30
    # MQL → accepted: a1 24 h, a2 48 h, e1 6 h: median 24 h, p90 48 h.
    assert speed[1][1] == 3 and speed[1][2].hours == 24 and speed[1][3].hours == 48
    acceptance = result.table("acceptance").rows[0]
    assert acceptance[:3] == [4, 3, 1] and str(acceptance[3]) == "75.0 %"
    assert acceptance[4] == 0  # the waiting handoff's lead was created in May (cohort)
    reasons = result.table("rejections_by_campaign").rows
    assert reasons == [["Alpha", "recycled: No budget this year", 1]]
    moved = builtin.speed(f(mode="moved")).table("acceptance").rows[0]
    assert moved[4] == 1  # moved in range: the May lead's MQL on June 3 waits


def test_over_time_by_channel_and_source(world):
    with time_machine.travel(dataset.NOW, tick=False):
        result = builtin.over_time(f(grain="week"))
    channel = result.table("leads_by_channel")
    totals = dict(zip(channel.columns[1:], [sum(r[i] for r in channel.rows)
                                            for i in range(1, len(channel.columns))]))
    assert totals == {"Hosted page": 6, "Embedded form": 2, "Import": 1, "Total": 9}
    weeks = [r[0] for r in channel.rows]
    assert weeks == ["2026-06-01", "2026-06-08", "2026-06-15"]
    sources = {r[0]: r[1:3] for r in result.table("sources").rows}
    assert sources["google"] == [3, 2] and sources["newsletter"] == [1, 1]


def test_an_empty_range_shows_an_empty_state_not_an_error(client, auth, world):
    auth.login_as("marketer")
    with time_machine.travel(dataset.NOW, tick=False):
        for slug in ("funnel", "over-time", "cost", "speed", "email", "scores"):
            page = client.get(f"/admin/reports/{slug}?since=2025-01-01&until=2025-01-31")
            assert page.status_code == 200, slug
            html = page.get_data(as_text=True)
            if slug == "cost":  # campaigns still cost something; every per-unit cost is "—"
                assert "Per MQL" in html and "—" in html
            else:
                assert "Nothing to show" in html, slug
            assert client.get(f"/admin/reports/{slug}.csv?since=2025-01-01"
                              "&until=2025-01-31").status_code == 200


def test_bad_filters_say_so_and_still_show_a_report(client, auth, world):
    auth.login_as("marketer")
    with time_machine.travel(dataset.NOW, tick=False):
        page = client.get("/admin/reports/funnel?since=yesterday&until=2026-06-15&campaign=x")
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert "is not a date" in html and "Unknown campaign" in html and "funnel-chart" in html


def test_csv_is_the_table_and_defused(client, auth, world):
    auth.login_as("sales")
    with time_machine.travel(dataset.NOW, tick=False):
        world.b.name = "=HYPERLINK(\"http://evil\")"
        db.session.commit()
        body = client.get("/admin/reports/funnel.csv?table=by_campaign&since=2026-06-01"
                          "&until=2026-06-15").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][:3] == ["campaign", "page_visits", "leads"]
    names = [r[0] for r in rows[1:]]
    assert "'=HYPERLINK(\"http://evil\")" in names


def test_today_is_read_live_and_past_days_from_the_rollups(world):
    with time_machine.travel(dataset.NOW, tick=False):
        stored = db.session.scalar(sa.select(sa.func.sum(ReportDaily.value)).where(
            ReportDaily.metric == "page_views", ReportDaily.day == dataset.TODAY))
        assert stored is None  # no visit today yet
        db.session.add(Event(type="page_viewed", occurred_at=dataset.NOW,
                             campaign_id=world.a.id, data={}))
        db.session.commit()
        # Not rolled up yet, and still counted: today is built live.
        assert query.totals(["page_views"], dataset.TODAY, dataset.TODAY) == {"page_views": 1}
        # A past day changed behind the rollup's back is not re-read until a refresh says so.
        db.session.add(Event(type="page_viewed", occurred_at=dataset.at(2, 8),
                             campaign_id=world.a.id, data={}))
        db.session.commit()
        day2 = date(2026, 6, 2)
        before = query.totals(["page_views"], day2, day2)["page_views"]
        refresh()
        assert query.totals(["page_views"], day2, day2)["page_views"] == before + 1


def test_a_late_commit_below_the_high_mark_is_still_counted(world):
    """Ids are handed out before commit: a transaction that commits after a refresh went past
    its id must still be rolled up by the next one."""
    with time_machine.travel(dataset.NOW, tick=False):
        high = db.session.scalar(sa.select(sa.func.max(Event.id)))
        db.session.add(Event(id=high + 2, type="page_viewed", occurred_at=dataset.at(3, 8),
                             campaign_id=world.b.id, data={}))
        db.session.commit()
        refresh()
        day3 = date(2026, 6, 3)
        before = query.totals(["page_views"], day3, day3, campaign_id=world.b.id)["page_views"]
        db.session.add(Event(id=high + 1, type="page_viewed", occurred_at=dataset.at(3, 9),
                             campaign_id=world.b.id, data={}))  # the late one
        db.session.commit()
        refresh()
        assert query.totals(["page_views"], day3, day3,
                            campaign_id=world.b.id)["page_views"] == before + 1


def test_refresh_is_idempotent_and_rebuild_gives_the_same_rows(world, runner):
    def snapshot():
        return sorted(tuple(r) for r in db.session.execute(sa.select(
            ReportDaily.day, ReportDaily.metric, ReportDaily.campaign_id, ReportDaily.channel,
            ReportDaily.utm_source, ReportDaily.detail, ReportDaily.value)))

    with time_machine.travel(dataset.NOW, tick=False):
        first = snapshot()
        refresh()
        refresh()
        assert snapshot() == first
        db.session.execute(sa.delete(ReportDaily))
        db.session.commit()
        result = runner.invoke(args=["reports", "rebuild-rollups"])
        assert result.exit_code == 0, result.output
        assert "Rebuilt the facts of 10 leads" in result.output
        assert snapshot() == first
        assert rebuild().leads == 10


def test_the_refresh_lock_leaves_no_session_idle_in_a_transaction(app):
    """The refresh's advisory lock lives on a connection of its own for the whole refresh. In
    a transaction it showed as "idle in transaction" all that time, which monitoring flags
    and a server's idle_in_transaction_session_timeout ends (dropping the lock mid-refresh)."""
    from app.reports import rollup

    if db.engine.dialect.name != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's")
    release = rollup._lock()
    assert release is not None
    try:
        with db.engine.connect() as watcher:
            states = watcher.scalars(sa.text(
                "SELECT state FROM pg_stat_activity WHERE datname = current_database() "
                "AND query ILIKE '%pg_try_advisory_lock%' AND pid <> pg_backend_pid()")).all()
        assert states == ["idle"]
    finally:
        release()


def test_a_utm_source_in_a_csv_header_is_defused(client, auth, world):
    """The "New leads by UTM source" table has one column per source, and the source is what
    the visitor posted: a header cell starting with "=" ran as a formula in the spreadsheet."""
    auth.login_as("marketer")
    with time_machine.travel(dataset.NOW, tick=False):
        dataset._lead("evil@x.example.com", dataset.at(11), campaign_id=world.a.id,
                      channel="hosted", utm_source="=HYPERLINK(\"http://evil\",\"x\")")
        db.session.commit()
        refresh()
        body = client.get("/admin/reports/over-time.csv?table=leads_by_source"
                          "&since=2026-06-01&until=2026-06-15").get_data(as_text=True)
    header = next(csv.reader(io.StringIO(body)))
    assert "'=hyperlink(\"http://evil\",\"x\")" in header
    assert not any(cell.startswith("=") for cell in header)


def test_a_deal_told_again_with_a_new_amount_counts_once_in_revenue(world):
    """The CRM corrects a won deal's amount (same deal id, told again): the lead keeps both
    rows as history, but the cost report's "Won" must count the deal once, at its latest
    amount. It added both, 100 + 120."""
    from app.outcomes.service import record_outcome

    with time_machine.travel(dataset.NOW, tick=False):
        a1 = world.leads["a1"]
        record_outcome(a1, "customer", "100", "USD", "D-1", actor="crm")
        record_outcome(a1, "customer", "120", "USD", "D-1", actor="crm")
        record_outcome(a1, "customer", "40", "USD", "D-2", actor="crm")  # a second deal
        db.session.commit()
        for mode in ("cohort", "moved"):
            rows = {r[0]: r for r in builtin.cost(f(mode=mode)).table("cost").rows}
            assert rows["Alpha"][13] == "160.00 USD", mode


def test_a_handoff_the_lead_left_by_another_path_is_not_still_waiting(world):
    """a4 became an MQL and was handed over, then a rep moved it to SQL on the lead page
    without deciding the handoff: sales' queue no longer lists it, but the Speed report
    counted it "still waiting" for ever."""
    with time_machine.travel(dataset.NOW, tick=False):
        a4 = world.leads["a4"]
        change = dataset._move(a4, "mql", dataset.at(9))
        db.session.add(Assignment(lead_id=a4.id, stage_change_id=change.id, user_id=None,
                                  method="none", created_at=dataset.at(9)))
        dataset._move(a4, "sql", dataset.at(10), actor="user")
        db.session.commit()
        refresh()
        for mode, waiting in (("cohort", 0), ("moved", 1)):  # moved: a_old's handoff waits
            row = builtin.speed(f(mode=mode)).table("acceptance").rows[0]
            assert row[4] == waiting, mode
