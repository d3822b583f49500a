"""Spam checks: what makes a submission look automated."""

import time

import pytest

from forms import spam


@pytest.fixture
def form(make_form):
    return make_form(min_submit_seconds=2, blocked_domains=["mailinator.com"])


def _data(form, age=10.0, **extra):
    return {"ts": spam.render_token(form, now=time.time() - age), **extra}


def test_a_person_passes(form):
    assert spam.suspicion(form, _data(form), "example.com") is None


@pytest.mark.parametrize("case,reason", [
    ({"website": "x"}, "honeypot"),
    ({"ts": ""}, "missing or forged"),
    ({"ts": "abc.def"}, "missing or forged"),
])
def test_suspects_are_named(form, case, reason):
    assert reason in spam.suspicion(form, _data(form, **case), "example.com")


def test_too_fast_too_old_and_foreign_tokens(form, make_form, app):
    assert "after the form was shown" in spam.suspicion(form, _data(form, age=0.5), "example.com")
    old = app.config["WTF_CSRF_TIME_LIMIT"] + 60
    assert "too old" in spam.suspicion(form, _data(form, age=old), "example.com")
    other = make_form("Other")
    assert "another form" in spam.suspicion(form, _data(other), "example.com")
    embed = {"ts": spam.embed_token(form, now=time.time() - 10)}
    assert "forged" in spam.suspicion(form, embed, "example.com")  # salts differ by purpose
    assert spam.suspicion(form, embed, "example.com", salt=spam.EMBED_SALT) is None


@pytest.mark.parametrize("address,blocked", [("x@mailinator.com", True),
                                             ("x@eu.MAILINATOR.com", True),
                                             ("x@notmailinator.com", False)])
def test_blocked_domains_include_their_subdomains(form, address, blocked):
    reason = spam.suspicion(form, _data(form), spam.email_domain(address))
    assert (reason is not None) is blocked
