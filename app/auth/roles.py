"""Access control for admin views: logged in, and with the right role."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import abort
from flask_login import current_user, login_required

from app.auth.models import Role


def role_required(*roles: Role | str) -> Callable:
    """Require a login (redirect to the login page) and one of `roles` (403 otherwise).

    Admins pass every check.
    """

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.has_role(*roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


marketer_required = role_required(Role.MARKETER)
sales_required = role_required(Role.SALES)
admin_required = role_required(Role.ADMIN)
# Pages both marketing and sales use (lead pages, the timeline).
staff_required = role_required(Role.MARKETER, Role.SALES)
