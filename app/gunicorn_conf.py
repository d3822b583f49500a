"""gunicorn settings: `gunicorn -c python:app.gunicorn_conf … wsgi:app` (the README's
production command and `flask run-all`). Its error and access logs are written in Kindling's
one format (`app.logs`, `LOG_FORMAT`), one line per request, on stderr."""

from __future__ import annotations

import errno as _errno
import gc as _gc
import os
import socket as _socket

from gunicorn import glogging

# gunicorn takes every public name of this module as a setting: `config` is one (a config
# file's path), so the modules go under private names.
from app import config as _config
from app import logs as _logs

# A worker busy longer than this is killed (the visitor gets a closed connection). It must
# outlast the database's own limits, so that a stuck statement ends in the branded 503 with
# Retry-After instead: DATABASE_CONNECT_TIMEOUT + DATABASE_STATEMENT_TIMEOUT + 10 s (75 s with
# the defaults; `--timeout` on the command line still wins).
_database = {**_config.defaults(""), **_config.from_environ(os.environ)}
timeout = (int(_database["DATABASE_CONNECT_TIMEOUT"])
           + int(_database["DATABASE_STATEMENT_TIMEOUT"]) + 10)

# Each worker listens on a socket of its own (SO_REUSEPORT) and the kernel spreads new
# connections over them evenly. On one shared socket the worker whose main thread wakes first
# accepts a whole burst: 31 of wrk's 32 kept-alive connections went to one of two gthread
# workers, which then did all the work on one core (its GIL) while the other idled. A second
# server started on the same port would share it instead of failing: `on_starting` refuses.
reuse_port = True


def on_starting(server) -> None:
    """Refuse to start on an address another server listens on (an earlier `make run` still
    running, say): with `reuse_port` the two would share it and split the requests between
    them, and without it each worker retried and was booted again, forever. An upgrade by
    USR2 (a new master sharing the old one's sockets) or sockets from systemd are not
    checked: sharing is their point."""
    if server.master_pid or os.environ.get("LISTEN_FDS"):
        return
    for address in server.cfg.address:
        if not isinstance(address, tuple):
            continue  # a unix socket: gunicorn itself refuses one in use
        family = _socket.AF_INET6 if ":" in address[0] else _socket.AF_INET
        with _socket.socket(family, _socket.SOCK_STREAM) as probe:
            # SO_REUSEADDR lets the probe bind past connections in TIME_WAIT, never past a
            # listening socket; without SO_REUSEPORT it cannot join one.
            probe.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno != _errno.EADDRINUSE:
                    raise
                host, port = address[0], address[1]
                server.log.error("%s:%s is already in use: another server listens there (an "
                                 "earlier `make run`?). Stop it, or choose another port "
                                 "(make run PORT=…, or gunicorn --bind).", host, port)
                raise SystemExit(1) from None


def post_worker_init(worker) -> None:
    """Once a worker has loaded the app, its objects (modules, the app, the models, the
    routes: about 170,000 of them) leave the garbage collector's view (`gc.freeze`): they
    live as long as the worker, and each full collection scanned them all while every thread
    of the worker waited. Under the submit benchmark a worker stopped for 140-490 ms about
    every 5 s, and wrk's p99 was those pauses (479/718/586 ms; with the freeze 244/226/227 ms,
    p50 unchanged, same throughput, on a loaded machine). Objects made later are collected
    as before; reference counting still frees frozen objects no longer used."""
    _gc.collect()
    _gc.freeze()


accesslog = "-"
# client, request line, status, bytes, seconds, user agent
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss "%(a)s"'


class Logger(glogging.Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        fmt = _logs.formatter(os.environ.get("LOG_FORMAT"))
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(fmt)


logger_class = Logger
