"""Users of the admin: marketers, sales and admins."""

from __future__ import annotations

import enum
import secrets
import time
from datetime import datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from app.db import Model, UTCDateTime, db, utcnow


class Role(str, enum.Enum):
    ADMIN = "admin"
    MARKETER = "marketer"
    SALES = "sales"


_SIGNED_IN = "_kindling_signed_in"


class User(UserMixin, Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    password_hash: Mapped[str] = mapped_column(sa.String(256))
    role: Mapped[str] = mapped_column(sa.String(20), default=Role.MARKETER.value)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Part of every session and remember-me cookie: raising it ends them all (sign-out, a
    # password change, deactivation).
    session_version: Mapped[int] = mapped_column(default=1, server_default="1")

    def set_password(self, password: str) -> None:
        # scrypt through Werkzeug: a memory-hard KDF with a random salt per user.
        changing = bool(self.password_hash)
        self.password_hash = generate_password_hash(password, method="scrypt")
        if changing:
            self.revoke_sessions()

    def revoke_sessions(self) -> None:
        """End every session and remember-me cookie of this user, on every device."""
        self.session_version = (self.session_version or 1) + 1

    def deactivate(self) -> None:
        self.active = False
        self.revoke_sessions()

    def start_sign_in(self, signed_in: str | None = None) -> None:
        """The sign-in this object stands for ("<issued epoch seconds>.<nonce>"): a new one
        (its cookies differ from every other sign-in's), or the one a cookie names. Kept on
        the instance only, never in the database."""
        setattr(self, _SIGNED_IN, signed_in or f"{int(time.time())}.{secrets.token_urlsafe(6)}")

    def get_id(self) -> str:
        """What Flask-Login keeps in the session and the (signed) remember-me cookie."""
        if getattr(self, _SIGNED_IN, None) is None:
            self.start_sign_in()
        return f"{self.id}:{self.session_version or 1}:{getattr(self, _SIGNED_IN)}"

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    def has_role(self, *roles: Role | str) -> bool:
        """Admins may do everything; everyone else only what their role allows."""
        if self.role == Role.ADMIN.value:
            return True
        return self.role in {Role(r).value for r in roles}

    def __repr__(self) -> str:
        return f"<User {self.email} {self.role}>"


def user_from_cookie_id(cookie_id: str, max_age_seconds: float) -> User | None:
    """The signed-in user a cookie's id names, if that sign-in still holds: the user exists and
    is active, nothing revoked it since, and it is younger than `max_age_seconds`."""
    parts = cookie_id.split(":")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None  # a cookie from before sign-ins could be revoked: sign in again
    issued = parts[2].split(".", 1)[0]
    if not issued.isdigit() or time.time() - int(issued) > max_age_seconds:
        return None
    user = db.session.get(User, int(parts[0]))
    if user is None or not user.active or user.session_version != int(parts[1]):
        return None
    user.start_sign_in(parts[2])
    return user


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(sa.select(User).where(User.email == email.strip().lower()))


def create_user(email: str, password: str, role: Role | str, name: str = "") -> User:
    user = User(email=email.strip().lower(), name=name, role=Role(role).value)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    return user
