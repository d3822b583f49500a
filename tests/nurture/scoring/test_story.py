"""The score's "why" reaches every channel that tells a lead's story (alert emails, exports)."""

import time_machine

from app.leads.story import story
from tests.nurture.scoring.support import DIRECTOR, NOW, add_events, hot_activity, make_lead


def test_story_carries_the_score_breakdown(app):
    lead = make_lead(**DIRECTOR)
    add_events(lead, *hot_activity())
    with time_machine.travel(NOW, tick=False):
        sections = {section.title: section.lines for section in story(lead)}
    score = sections["Score"]
    assert score[0].startswith("Fit A")
    assert any(line.startswith("Qualifies because: engagement") for line in score)
    assert any("Fit +15" in line for line in score)
    assert any("decay" in line and "/pricing" in line for line in score)
