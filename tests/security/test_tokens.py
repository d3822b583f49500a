"""Forged and cross-purpose tokens: every signed token has its own salt, so a token made for one
purpose (an open pixel, an unsubscribe, an accept link…) is refused by every other reader even
when its payload has the right shape; a token signed with another secret, or changed by one
character, is refused by its own reader; and no token route answers 500 to any of them."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from app.sales import links
from campaigns import tokens as campaign_tokens
from forms import confirm, spam
from nurture import unsubscribe
from nurture.tracking import tokens as tracking_tokens

FORM = SimpleNamespace(id=1)
MAKERS: dict[str, Callable[[], str]] = {
    "accept": lambda: links.make_token("accept", 1, 1),
    "reject": lambda: links.make_token("reject", 1, 1),
    "thanks": lambda: campaign_tokens.thanks_token(1, 1),
    "download": lambda: campaign_tokens.download_token(1, 1),
    "confirm": lambda: confirm.make_token(SimpleNamespace(id=1)),  # type: ignore[arg-type]
    "unsubscribe": lambda: unsubscribe.make_token(1, 1),
    "open": lambda: tracking_tokens.open_token(1),
    "click": lambda: tracking_tokens.click_token(1, 1),
    "form render": lambda: spam.render_token(FORM, time.time() - 60),  # type: ignore[arg-type]
    "embed": lambda: spam.embed_token(FORM, time.time() - 60),  # type: ignore[arg-type]
}


def _confirm_reader(token: str) -> Any:
    try:
        return confirm._load(token)
    except confirm.LinkProblem as problem:
        return None if problem.status == 400 else "signature accepted"


def _spam_reader(salt: str) -> Callable[[str], Any]:
    def read(token: str) -> Any:
        form = SimpleNamespace(id=1, min_submit_seconds=0, blocked_domains=[])
        why = spam.suspicion(form, {spam.TIMESTAMP: token}, "acme.example.com",  # type: ignore[arg-type]
                             salt=salt)
        return None if why == "missing or forged form token" else "signature accepted"
    return read


READERS: dict[str, Callable[[str], Any]] = {
    "accept": lambda t: links.read_token("accept", t),
    "reject": lambda t: links.read_token("reject", t),
    "thanks": campaign_tokens.load_thanks,
    "download": campaign_tokens.load_download,
    "confirm": _confirm_reader,
    "unsubscribe": unsubscribe.read_token,
    "open": tracking_tokens.read_open,
    "click": tracking_tokens.read_click,
    "form render": _spam_reader(spam.SALT),
    "embed": _spam_reader(spam.EMBED_SALT),
}


def test_each_reader_takes_its_own_token(app):
    assert {name: READERS[name](make()) is not None for name, make in MAKERS.items()} == {
        name: True for name in MAKERS}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_tokens_of_other_purposes_are_refused(app, reader):
    accepted = [maker for maker, make in MAKERS.items()
                if maker != reader and READERS[reader](make()) is not None]
    assert accepted == []


def _tampered(token: str) -> list[str]:
    body, _, signature = token.rpartition(".")
    # (not the last character: its low bits are padding, so some changes decode the same)
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return [f"{body}.{flipped}", token[:-3], "x" + token, token.replace(".", "", 1), "", "."]


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_forged_and_damaged_tokens_are_refused(app, make_app, app_config, name):
    with make_app({**app_config, "SECRET_KEY": "another-installation"}).app_context():
        foreign = MAKERS[name]()
    assert READERS[name](foreign) is None
    for damaged in _tampered(MAKERS[name]()):
        assert READERS[name](damaged) is None, damaged


TOKEN_ROUTES = [("GET", "/sales/a/{}"), ("POST", "/sales/a/{}"), ("GET", "/sales/r/{}"),
                ("POST", "/sales/r/{}"), ("GET", "/confirm/{}"), ("POST", "/confirm/{}"),
                ("GET", "/d/{}"), ("POST", "/d/{}/resend"), ("GET", "/p/nope/thanks/{}"),
                ("GET", "/t/o/{}.gif"), ("GET", "/t/c/{}"), ("GET", "/u/{}"), ("POST", "/u/{}")]


def test_no_token_route_fails_on_a_foreign_or_forged_token(app, client, auth):
    tokens = [make() for make in MAKERS.values()]
    tokens += _tampered(MAKERS["accept"]()) + ["%00", "..%2f..%2fetc", "a" * 3000]
    auth.login_as("admin")  # signed in: the accept/reject POSTs get as far as the token
    errors = [(method, path.format(token[:20]), status)
              for method, path in TOKEN_ROUTES for token in tokens
              if (status := client.open(path.format(token), method=method).status_code) >= 500]
    assert errors == []
