"""WSGI entry point: `gunicorn wsgi:app`, and `flask --app wsgi <command>`."""

import sys

from app import create_app
from app.config import ConfigError

try:
    app = create_app()
except ConfigError as refused:
    # The operator reads every problem at once, one line each, not a traceback. Exit status 3 is
    # gunicorn's "worker failed to boot": the master stops instead of respawning forever.
    print(refused, file=sys.stderr)
    raise SystemExit(3) from None
