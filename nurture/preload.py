"""Warm-up for the worker: imported (via RQ_PRELOAD_MODULES) by the worker process once, after
the app is built and before it runs or forks for its first job, so in-process jobs and every
forked work-horse find the work done instead of redoing it for their chunk of sends: the ORM's mapper configuration, the Markdown
extension registry and the email layout template. Nothing here touches the database (a
connection must never cross the fork) or depends on a lead.
"""

from __future__ import annotations

import logging

from flask import current_app, has_app_context

log = logging.getLogger(__name__)


def warm_up() -> None:
    import sqlalchemy.orm

    from nurture import render

    sqlalchemy.orm.configure_mappers()
    render.warm_up()
    if has_app_context():
        current_app.jinja_env.get_template(render.LAYOUT)


try:
    warm_up()
except Exception:
    log.warning("nurture: worker warm-up failed; work-horses will do it themselves",
                exc_info=True)


def _freeze() -> None:
    """Objects alive now (the app, its modules, the warmed caches) outlive every work-horse:
    keeping them out of the collector's sweeps spares each forked work-horse from traversing
    (and so copying, page by page) the parent's whole heap."""
    import gc

    gc.freeze()


_freeze()
