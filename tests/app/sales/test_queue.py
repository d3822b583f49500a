"""The sales queue: my MQLs oldest first with answers; managers see everyone's."""

from datetime import timedelta

from app.db import db
from app.sales.models import Assignment, SalesRep
from tests.app.sales.helpers import handed_off
from tests.helpers import make_user

XSS = "<img src=x onerror=alert(1)>"


def test_my_mqls_oldest_first_with_accept_and_reject(app, client, auth):
    _first, _a1 = handed_off(email="first@acme.example.com", first_name="First")
    _second, a2 = handed_off(None, email="second@acme.example.com", first_name="Second")
    older = db.session.get(Assignment, a2.assignment_id)
    older.created_at = older.created_at - timedelta(hours=5)
    db.session.commit()
    auth.login("sam@example.com")
    page = client.get("/sales/queue").get_data(as_text=True)
    assert page.index("Second") < page.index("First")  # the one waiting longest comes first
    assert page.count("/sales/a/") == 2 and page.count("/sales/r/") == 2


def test_other_reps_leads_are_not_in_my_queue_but_a_manager_sees_them(app, client, auth):
    handed_off(first_name="Samslead")
    kim = make_user("kim@example.com", "sales")
    auth.login("kim@example.com")
    assert "Samslead" not in client.get("/sales/queue").get_data(as_text=True)

    db.session.add(SalesRep(user_id=kim.id, weight=1, working_days=[0, 1, 2, 3, 4],
                            is_manager=True))
    db.session.commit()
    assert "Samslead" in client.get("/sales/queue?view=all").get_data(as_text=True)
    sam_id = db.session.get(Assignment, 1).user_id
    filtered = client.get(f"/sales/queue?owner={sam_id}").get_data(as_text=True)
    assert "Samslead" in filtered


def test_decided_leads_leave_the_queue(app, client, auth):
    _, alert = handed_off(first_name="Gone")
    assignment = db.session.get(Assignment, alert.assignment_id)
    assignment.outcome = "accepted"
    db.session.commit()
    auth.login("sam@example.com")
    assert "Gone" not in client.get("/sales/queue").get_data(as_text=True)


def test_lead_names_are_escaped_in_the_queue(app, client, auth):
    handed_off(first_name=XSS)
    auth.login("sam@example.com")
    page = client.get("/sales/queue").get_data(as_text=True)
    assert XSS not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_access_signed_out_marketer_and_admin(app, client, auth):
    response = client.get("/sales/queue")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    auth.login_as("marketer")
    assert client.get("/sales/queue").status_code == 200  # marketers read the queue
    auth.logout()
    auth.login_as("admin")
    assert client.get("/sales/queue").status_code == 200


def test_the_nav_shows_the_sales_queue_to_sales(app, client, auth):
    auth.login_as("sales")
    assert "Sales queue" in client.get("/admin/").get_data(as_text=True)
