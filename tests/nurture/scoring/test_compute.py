"""Fit, grades, decaying engagement and daily caps: the pure functions."""

from datetime import timedelta
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
    old, new = result.items
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
