"""Publicly cacheable responses carry no session.

A response marked `Cache-Control: public` (a landing page, a static script) may be stored by
nginx or a CDN and served to anyone: it must not set the session cookie nor say `Vary: Cookie`
because some hook (Flask-Login's remember-cookie check runs on every request) glanced at the
session. This session interface skips saving the session for such responses.
"""

from __future__ import annotations

from flask import Flask, Response
from flask.sessions import SecureCookieSessionInterface, SessionMixin


def is_public(response: Response) -> bool:
    return bool(response.cache_control.public)


class PublicAwareSessionInterface(SecureCookieSessionInterface):
    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if is_public(response):
            return
        super().save_session(app, session, response)


def init_app(app: Flask) -> None:
    app.session_interface = PublicAwareSessionInterface()
