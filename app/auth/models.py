"""Users of the admin: marketers, sales and admins."""

from __future__ import annotations

import enum
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

    def set_password(self, password: str) -> None:
        # scrypt through Werkzeug: a memory-hard KDF with a random salt per user.
        self.password_hash = generate_password_hash(password, method="scrypt")

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


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(sa.select(User).where(User.email == email.strip().lower()))


def create_user(email: str, password: str, role: Role | str, name: str = "") -> User:
    user = User(email=email.strip().lower(), name=name, role=Role(role).value)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    return user
