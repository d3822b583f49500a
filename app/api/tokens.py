"""Issuing, finding and revoking API tokens.

A token reads `kdl_<43 url-safe characters>` (256 random bits). `issue` returns it once; only
its SHA-256 is kept. `authenticate` finds the active token of an active user, and stamps its
last use at most once a minute (a busy integration does not write a row per request).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import sqlalchemy as sa

from app.api.models import SCOPES, ApiToken
from app.auth.models import User
from app.db import db, utcnow

PREFIX = "kdl_"
LAST_USED_EVERY = timedelta(minutes=1)


class TokenError(ValueError):
    """The token cannot be made as asked; the message says why."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue(user: User, name: str, scope: str) -> tuple[ApiToken, str]:
    """Make a token for `user`. Returns the row and the token, which is never shown again.
    Does not commit."""
    name = (name or "").strip()
    if not name:
        raise TokenError("Give the token a name, e.g. the system that will use it.")
    if len(name) > 100:
        raise TokenError("The name is longer than 100 characters.")
    if scope not in SCOPES:
        raise TokenError(f"The scope must be one of: {', '.join(SCOPES)}.")
    if not user.active:
        raise TokenError(f"{user.email} is not an active user.")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, scope=scope, token_hash=hash_token(token),
                   prefix=token[:12], created_at=utcnow())
    db.session.add(row)
    db.session.flush()
    return row, token


def authenticate(token: str) -> ApiToken | None:
    """The active token of an active user, or None. Commits a last-used stamp when due."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    row = db.session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
        db.session.execute(sa.update(ApiToken).where(ApiToken.id == row.id)
                           .values(last_used_at=now).execution_options(synchronize_session=False))
        db.session.commit()
        row = db.session.get(ApiToken, row.id) or row
    return row


def revoke(row: ApiToken) -> bool:
    """Revoke now; False when it already was. Does not commit."""
    if row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    return True


def tokens_of(user: User | None = None) -> list[ApiToken]:
    """Every token (an admin's view) or one user's, newest first."""
    query = sa.select(ApiToken).order_by(ApiToken.id.desc())
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return list(db.session.scalars(query))
