"""Signing in to the admin in a real browser."""

import pytest

from tests.helpers import PASSWORD

pytestmark = pytest.mark.e2e


def test_marketer_signs_in_and_sees_the_dashboard(live_server, page, make_app, app_config):
    from app.db import db
    from tests.helpers import make_user

    # The live server shares this test's database file: create the user through the same app.
    server_app = make_app(app_config)
    with server_app.app_context():
        make_user("m@example.com", "marketer")
        db.session.remove()

    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill("m@example.com")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_text("do not match").is_visible()
    assert page.get_by_label("Email").input_value() == "m@example.com"  # input kept

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/admin/")
    assert page.get_by_role("heading", name="Dashboard").is_visible()
