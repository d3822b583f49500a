"""Logs an operator can use (issue 15, finding 18): one line per event in one format with the
time zone and the pid (JSON with LOG_FORMAT=json), a line per stage change and per SendGrid
webhook batch, and an idle worker that does not log its periodic jobs (issue 11: the console
of `make run` is readable)."""

from __future__ import annotations

import json
import logging
import re
import sys

from rq import Queue

from app.leads.models import Stage
from app.leads.service import change_stage
from app.logs import JsonFormatter, TextFormatter
from tests.nurture.scoring.support import make_lead
from tests.nurture.worker_process import WorkerProcess, worker_env

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d "
                  r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) \[\d+\] [\w.]+: ")


def _record(message: str, *args, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("broken\nacross lines")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("app.test", logging.ERROR, __file__, 1, message, args, exc_info)


def test_a_text_line_has_time_zone_pid_and_stays_one_line():
    line = TextFormatter().format(_record("lead said %s", "hi\nFAKE 2026 INFO [1] x: y",
                                          exc=True))
    assert "\n" not in line
    assert LINE.match(line), line
    assert "Traceback" in line and "ValueError" in line


def test_a_database_errors_detail_line_naming_a_leads_values_is_never_logged():
    """PostgreSQL's DETAIL line names the row: "Key (email)=(…) already exists", "Failing
    row contains (…)". A traceback or message carrying one (log.exception of a refused
    insert) keeps the error but not that line, in both formats."""
    import sqlalchemy as sa

    detail = ("DETAIL:  Failing row contains (7, ann.private@example.com, Ann, 10.1.2.3).")
    refused = sa.exc.IntegrityError("INSERT INTO leads …", {}, Exception(
        'null value in column "stage" violates not-null constraint\n' + detail))
    try:
        raise refused
    except sa.exc.IntegrityError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("app.test", logging.ERROR, __file__, 1, "refused: %s",
                               (refused,), exc_info)
    for formatted in (TextFormatter().format(record), JsonFormatter().format(record)):
        assert "ann.private" not in formatted and "10.1.2.3" not in formatted, formatted
        assert "violates not-null constraint" in formatted and "IntegrityError" in formatted


def test_json_lines_are_one_object_each():
    line = JsonFormatter().format(_record("sent %s", "x", exc=True))
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == "sent x" and data["pid"] > 0 and data["level"] == "ERROR"
    assert re.search(r"[+-]\d\d:\d\d$", data["time"])
    assert "ValueError" in data["exception"]


def test_the_scheduler_does_not_log_each_periodic_run():
    from app.logs import QuietPeriodicJobs

    quiet = QuietPeriodicJobs({"app.outbox.relay"})
    enqueued = logging.LogRecord("rq.cron", logging.INFO, __file__, 1,
                                 "Enqueued job relay to queue default", (), None)
    started = logging.LogRecord("rq.cron", logging.INFO, __file__, 1,
                                "CronScheduler %s: starting...", ("x",), None)
    assert not quiet.filter(enqueued)
    assert quiet.filter(started)


def test_a_stage_change_is_logged(app, caplog):
    lead = make_lead()
    with caplog.at_level(logging.INFO, logger="app.leads.service"):
        change_stage(lead, Stage.MQL, reason="engagement 60 ≥ 50", actor="scoring")
    (line,) = [r.getMessage() for r in caplog.records if "stage change" in r.getMessage()]
    assert f"lead {lead.id} lead → mql by scoring" in line
    assert lead.email not in line


def test_an_idle_worker_does_not_log_periodic_jobs(app_config, redis_conn, tmp_path):
    """A burst worker runs two periodic jobs and one other: JSON lines only, and only the
    other job is mentioned."""
    for path in ("app.outbox.relay", "nurture.jobs.tick"):
        Queue("default", connection=redis_conn).enqueue(path)
    other = Queue("default", connection=redis_conn).enqueue("app.outbox.run", 999_999)
    worker = WorkerProcess(worker_env(app_config, LOG_FORMAT="json"), tmp_path / "w.log",
                           burst=True)
    try:
        assert worker.wait(120) == 0, worker.log()
        output = worker.log()
    finally:
        worker.kill()  # gone already: closes its log
    lines = [line for line in output.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    text = "\n".join(r["message"] for r in records)
    assert "relay" not in text and "tick" not in text
    assert other.id in text
    assert all(r["pid"] > 0 and r["time"] for r in records)


def test_a_finished_job_is_one_line_not_three():
    from rq.logutils import make_colorizer

    from app.logs import QuietPeriodicJobs

    quiet = QuietPeriodicJobs(set())

    def rq_line(msg: str, *args) -> logging.LogRecord:
        return logging.LogRecord("rq.worker", logging.INFO, __file__, 1, msg, args, None)

    started = rq_line("Worker %s: %s: %s (%s)", "w1", "default", "outbox 7: send()", "outbox-7")
    completed = rq_line("Successfully completed %s job in %ss on worker %s",
                        "outbox 7", "0.2", "w1")
    job_ok = rq_line("Worker %s: %s: %s (%s)", "w1", "default", make_colorizer("blue")("Job OK"),
                     "outbox-7")
    kept = rq_line("Worker %s: job %s result is kept for %s seconds", "w1", "outbox-7", 500)
    assert [quiet.filter(r) for r in (started, completed, job_ok, kept)] == [
        True, True, False, False]


def test_gunicorn_waits_for_the_databases_own_timeouts(monkeypatch):
    """A statement stuck until DATABASE_STATEMENT_TIMEOUT must end in the 503 page, not in
    gunicorn killing the worker first (its default timeout is 30 s)."""
    import importlib

    import app.gunicorn_conf as conf

    monkeypatch.setenv("DATABASE_CONNECT_TIMEOUT", "5")
    monkeypatch.setenv("DATABASE_STATEMENT_TIMEOUT", "60")
    assert importlib.reload(conf).timeout > 65
    monkeypatch.setenv("DATABASE_STATEMENT_TIMEOUT", "5")
    assert 10 < importlib.reload(conf).timeout <= 30


def test_gunicorn_loads_the_config_module_as_the_readme_command_does():
    """`gunicorn -c python:app.gunicorn_conf` (the README's production command and `flask
    run-all`) reads every public name of the module as a setting: a module imported under a
    setting's name (`config`) made gunicorn refuse to start, and `make run` with it."""
    from gunicorn.app.base import Application

    class Probe(Application):  # gunicorn's own loader, without its command line
        def load_config(self) -> None:
            self.load_config_from_module_name_or_filename("python:app.gunicorn_conf")

        def load(self) -> None:
            return None

    application = Probe()  # exited with "Invalid value for config" before
    import app.gunicorn_conf as conf

    assert application.cfg.timeout == conf.timeout
    assert application.cfg.logger_class.__module__ == "app.gunicorn_conf"


def test_gunicorn_workers_listen_on_their_own_sockets_and_freeze_the_loaded_app():
    """Production's gunicorn settings for the submit path's tail latency: a socket per worker
    (the kernel spreads connections over them), and a worker's loaded app out of the garbage
    collector's full collections (they paused every thread of the worker)."""
    import gc

    from gunicorn.app.base import Application

    class Probe(Application):
        def load_config(self) -> None:
            self.load_config_from_module_name_or_filename("python:app.gunicorn_conf")

        def load(self) -> None:
            return None

    cfg = Probe().cfg
    assert cfg.reuse_port is True
    before = gc.get_freeze_count()
    try:
        cfg.post_worker_init(None)
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
