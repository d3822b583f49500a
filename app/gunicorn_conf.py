"""gunicorn settings: `gunicorn -c python:app.gunicorn_conf … wsgi:app` (the README's
production command and `flask run-all`). Its error and access logs are written in Kindling's
one format (`app.logs`, `LOG_FORMAT`), one line per request, on stderr."""

from __future__ import annotations

import os

from gunicorn import glogging

from app import logs

accesslog = "-"
# client, request line, status, bytes, seconds, user agent
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss "%(a)s"'


class Logger(glogging.Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        fmt = logs.formatter(os.environ.get("LOG_FORMAT"))
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(fmt)


logger_class = Logger
