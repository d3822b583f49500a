"""Flask extensions, created unbound here and bound to an app in `create_app`."""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf import CSRFProtect

from app.db import db

migrate = Migrate(compare_type=True, render_as_batch=True)
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
# Public form posts (landing pages, the embed API): the same per-address counters in the same
# Redis, without Flask-Limiter's X-RateLimit-* headers on every answer. Reading them back for
# the headers costs two more Redis round trips per post, for headers no browser reads; a
# refusal still says when to come back (`Retry-After`, app.errors).
form_limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=False)

__all__ = ["csrf", "db", "form_limiter", "limiter", "login_manager", "migrate"]
