"""Fit, grades, decaying engagement and daily caps: the pure functions."""

from datetime import UTC, timedelta
from types import SimpleNamespace

import pytest

from nurture.scoring.compute import assess, engagement, fit
from nurture.scoring.rules import RuleError, Rules, default_rules
from tests.nurture.scoring.support import NOW


def lead(**values):
    base = {"email": "x@acme.example.com", "first_name": "", "last_name": "", "company": "",
            "job_title": "", "phone": "", "country": "", "attributes": {}}
    return SimpleNamespace(**{**base, **values})


def event(id, type, days_ago, url=None, is_bot=False, **data):
    return SimpleNamespace(id=id, type=type, occurred_at=NOW - timedelta(days=days_ago), url=url,
                           campaign_id=data.pop("campaign_id", None), data=data, is_bot=is_bot)


def test_default_fit_rules_and_grades():
    rules = default_rules()
    director = fit(lead(job_title="Head of Growth", company="Acme", country="gb"), rules)
    assert (director.points, director.grade) == (30, "A")
    assert [item.points for item in director.items] == [15, 10, 5]
    manager = fit(lead(job_title="Marketing manager", company="Bright", country="US"), rules)
    assert (manager.points, manager.grade) == (15, "C")
    freemail = fit(lead(email="sofia@Gmail.com", country="ES"), rules)
    assert (freemail.points, freemail.grade) == (-10, "F")
    assert freemail.items[0].value == "gmail.com"


def test_attribute_and_number_rules():
    rules = Rules.from_dict({
        "fit": [{"field": "attributes.employees", "op": "between", "value": "50, 500",
                 "points": 20},
                {"field": "attributes.industry", "op": "equals", "value": "SaaS", "points": 5}],
        "grade_bands": [25, 20, 10, 0],
    })
    assert fit(lead(attributes={"employees": "120", "industry": "saas"}), rules).points == 25
    assert fit(lead(attributes={"employees": "9000"}), rules).grade == "D"
    assert fit(lead(attributes={"employees": "many"}), rules).points == 0


def test_engagement_decays_by_half_each_half_life():
    rules = default_rules()  # half-life 30 days
    result = engagement([event(1, "form_submitted", 30), event(2, "form_submitted", 0)],
                        rules, NOW)
    assert result.score == 22.5  # 15 × 0.5 + 15 × 1
    old, _new = result.items
    assert old.decay == pytest.approx(0.5) and old.points == pytest.approx(7.5)
    assert (old.event_id, old.event_type, old.raw_points) == (1, "form_submitted", 15)


def test_the_half_life_is_the_rules_setting():
    rules = Rules.from_dict({**default_rules().to_dict(), "half_life_days": 7})
    result = engagement([event(1, "form_submitted", 14), event(2, "email_clicked", 7)],
                        rules, NOW)
    assert [round(i.decay, 4) for i in result.items] == [0.25, 0.5]
    assert result.score == 15 * 0.25 + 5 * 0.5


def test_daily_cap_per_rule_per_day():
    rules = default_rules()  # opens: 1 point, at most 3 a day
    opens = [event(i, "email_opened", 0.1) for i in range(5)]
    opens.append(event(9, "email_opened", 1.5))  # another day: counts again
    result = engagement(opens, rules, NOW)
    counted = [item.counted_points for item in result.items]
    assert counted == [1, 1, 1, 0, 0, 1]
    assert [item.capped for item in result.items] == [False] * 3 + [True, True, False]
    assert result.score == pytest.approx(3 * 0.5 ** (0.1 / 30) + 0.5 ** (1.5 / 30), abs=0.01)


def test_machine_events_never_count():
    rules = default_rules()
    result = engagement([event(1, "email_clicked", 0, is_bot=True),
                         event(2, "page_viewed", 0, url="/pricing", is_bot=True)], rules, NOW)
    assert result.score == 0 and result.items == ()


def test_url_and_id_filters():
    rules = default_rules()
    result = engagement([event(1, "page_viewed", 0, url="https://x.example/pricing#team"),
                         event(2, "page_viewed", 0, url="/blog")], rules, NOW)
    assert [item.event_id for item in result.items] == [1]
    rules = Rules.from_dict({"engagement": [
        {"event_type": "email_clicked", "send_id": "12", "points": 9},
        {"event_type": "form_submitted", "form_id": "4", "points": 7},
        {"event_type": "asset_downloaded", "campaign_id": "5", "points": 3}]})
    result = engagement([event(1, "email_clicked", 0, send_id=12),
                         event(2, "email_clicked", 0, send_id=13),
                         event(3, "form_submitted", 0, form_id=4),
                         event(4, "asset_downloaded", 0, campaign_id=5)], rules, NOW)
    assert [i.event_id for i in result.items] == [1, 3, 4] and result.score == 19


def test_mql_reason_names_the_numbers():
    rules = default_rules()
    events = [event(1, "page_viewed", 1, url="/pricing"), event(2, "page_viewed", 2,
                                                                url="/pricing"),
              event(3, "form_submitted", 1), event(4, "asset_downloaded", 1)]
    result = assess(lead(job_title="VP Sales", company="Acme"), events, rules, NOW)
    assert result.fit.grade == "B"
    assert result.mql_reason.startswith(f"engagement {result.engagement.score:.0f} ≥ 50 and "
                                        "fit B ≥ C; 2 visits to /pricing")
    weak = assess(lead(email="a@gmail.com"), events, rules, NOW)
    assert weak.mql_reason is None  # engaged, but fit F


@pytest.mark.parametrize("rule, message", [
    ({"field": "job_title", "op": "matches", "value": "(VP", "points": 1},
     "Fit rule 1: “(VP” is not a valid pattern"),
    ({"field": "shoe_size", "op": "equals", "value": "9", "points": 1},
     "Fit rule 1: there is no lead field “shoe_size”"),
])
def test_invalid_rules_are_refused_by_name(rule, message):
    with pytest.raises(RuleError) as info:
        Rules.from_dict({"fit": [rule]})
    assert str(info.value).startswith(message)


def _random_rules(rnd):
    return Rules.from_dict({
        "fit": default_rules().to_dict()["fit"] + [
            {"field": "attributes.employees", "op": "between", "value": "50, 500", "points": 7},
            {"field": "country", "op": "equals", "value": " gb ", "points": 3}],
        "engagement": [
            {"event_type": "email_opened", "points": rnd.choice([1, 2.5]), "daily_cap": 3},
            {"event_type": "email_clicked", "points": 5, "daily_cap": rnd.choice([None, 7])},
            {"event_type": "page_viewed", "url_pattern": "/pricing", "points": 20,
             "daily_cap": 20},
            {"event_type": "page_viewed", "points": 0.5},
            {"event_type": "form_submitted", "form_id": "4", "points": 15, "daily_cap": 30},
            {"event_type": "asset_downloaded", "campaign_id": "5", "points": 10},
            {"event_type": "unsubscribed", "points": -8, "daily_cap": 10}],
        "half_life_days": rnd.choice([7, 30, 45.5]),
        "mql_engagement": rnd.choice([5, 20, 50]),
        "instant": rnd.choice([[], [{"event_type": "page_viewed", "url_pattern": "/demo",
                                     "min_grade": "B", "within_days": 10}]]),
    })


def test_the_rebuild_scorer_agrees_with_assess_to_the_digit():
    """`BatchScorer` (the rebuild's tuples) and `assess` (the incremental path) on random
    activity: same fit, grade, engagement and MQL reason, with and without a reset."""
    import random

    from nurture.scoring.compute import BatchScorer

    rnd = random.Random(6)
    types = ["email_opened", "email_clicked", "page_viewed", "form_submitted",
             "asset_downloaded", "unsubscribed", "email_sent"]
    for round_number in range(60):
        rules = _random_rules(rnd)
        scorer = BatchScorer(rules, NOW)
        for lead_number in range(10):
            person = lead(job_title=rnd.choice(["VP Sales", "Engineer", ""]),
                          company=rnd.choice(["", "Acme"]), country=rnd.choice(["GB", "BR"]),
                          email=rnd.choice(["a@gmail.com", "a@acme.example.com"]),
                          attributes=rnd.choice([{}, {"employees": "120"}]), stage="lead")
            events, rows = [], []
            when = NOW - timedelta(days=rnd.uniform(0, 90))
            for i in range(rnd.randrange(0, 40)):
                when += timedelta(seconds=rnd.choice([1, 600, 3600 * 9, 86400 * 2]))
                if when > NOW:
                    break
                kind = rnd.choice(types)
                url = rnd.choice([None, "/pricing", "/blog", "/demo"])
                campaign = rnd.choice([None, 5, 6])
                data = {"form_id": rnd.choice([4, 5])}
                events.append(SimpleNamespace(id=i + 1, type=kind, occurred_at=when, url=url,
                                              campaign_id=campaign, data=data, is_bot=False))
                rows.append((1, i + 1, kind, when.astimezone(UTC).replace(tzinfo=None),
                             url, campaign, data))
            since = rnd.choice([None, NOW - timedelta(days=rnd.uniform(0, 60))])
            expected = assess(person, events, rules, NOW, since=since)
            got = scorer.score(person, rows, since=since)
            assert (got.fit_points, got.fit_grade, got.engagement, got.mql_reason) == (
                expected.fit.points, expected.fit.grade, expected.engagement.score,
                expected.mql_reason), (round_number, lead_number)
            quiet = scorer.score(person, rows, since=since, decide=False)
            assert quiet.engagement == expected.engagement.score and quiet.mql_reason is None
