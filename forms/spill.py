"""The spill journal: submits the database refused, kept on local disk until it answers.

When the intake INSERT fails (database down, read-only, pool exhausted), `append` writes the
row as one JSON file under `<instance>/intake-spill/` (written to a temporary name, fsync'd,
renamed, the folder fsync'd) and the visitor still gets the thank-you page. `replay` puts the
files into the intake table: at the next submit that reaches the database (in the background),
on every intake processor run (kicked and swept by the scheduler), and when a worker starts.
A row already there (its id or its duplicate key) counts as replayed; a file is deleted only
after its row is committed. One replayer at a time per instance folder (a file lock).

A file the database refuses for what it holds (`CONTENT_REFUSED`: a NUL or an over-long value on
PostgreSQL, a missing value), or that is no submit at all (truncated, emptied by an erasure), will
be refused on every try: it is moved to `<instance>/intake-spill/refused/` (kept for a person to
look at, never deleted), logged as an error, and the replay goes on with the next file. A database
that refuses everything (down, read-only, out of connections) stops the replay with the file in
place. `flask intake status` counts the files set aside.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from app.logs import brief

log = logging.getLogger(__name__)

FOLDER = "intake-spill"
REFUSED_FOLDER = "refused"  # under FOLDER: files the database will never take, kept
# What the database says about the row itself, not about its own state: it would say it again
# on every try. (A duplicate key is not among them: `insert` takes it as the row already there.)
CONTENT_REFUSED = (DataError, IntegrityError)
# A file needs these to be a row the intake table can take.
_NEEDED = frozenset({"id", "form_id", "dedupe_key", "received_at"})
# A submit looks at the folder for files other processes spilled at most this often (this
# process's own spills are replayed at its next submit; the scheduler's sweep replays too).
LOOK_SECONDS = 5.0


def folder() -> Path:
    return Path(current_app.config["INSTANCE_PATH"]) / FOLDER


def append(values: Mapping[str, Any]) -> Path:
    """Keep one refused intake row durably. Raises OSError when even the disk refuses."""
    where = folder()
    where.mkdir(parents=True, exist_ok=True)
    row = dict(values)
    row["received_at"] = row["received_at"].isoformat()
    name = f"{row['received_at'].replace(':', '')}-{row['id']}.json"
    tmp = where / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(row, fh)
        fh.flush()
        os.fsync(fh.fileno())
    final = where / name
    os.replace(tmp, final)
    dir_fd = os.open(where, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    _looks()["spilled"] = True
    return final


def holds(intake_id: str) -> bool:
    """Whether the journal keeps the submit `intake_id` (not yet replayed)."""
    if not intake_id.isalnum():
        return False
    return _any_file(lambda name: name.endswith(f"-{intake_id}.json"))


def _any_file(test) -> bool:
    try:
        with os.scandir(folder()) as entries:
            return any(test(entry.name) for entry in entries)
    except FileNotFoundError:
        return False


def waiting() -> bool:
    """Whether any refused submit waits in the journal."""
    return _any_file(lambda name: name.endswith(".json"))


def _looks() -> dict[str, Any]:
    return current_app.extensions.setdefault("intake_spill_looks",
                                             {"spilled": False, "next": 0.0})


def worth_replaying() -> bool:
    """`waiting()` for the submit path, without listing the folder on every submit: after
    this process spilled a submit, or when the last look is `LOOK_SECONDS` old."""
    looks = _looks()
    now = time.monotonic()
    if not looks["spilled"] and now < looks["next"]:
        return False
    looks["spilled"], looks["next"] = False, now + LOOK_SECONDS
    return waiting()


def replay(*, wait: bool = False) -> int:
    """Put every spilled row into the intake table. Returns rows replayed (0 when another
    process is replaying, unless `wait`: then after it). A file the database refuses for its
    content is set aside; any other database error stops the replay: the rest waits for next
    time."""
    from forms.intake import insert

    where = folder()
    if not where.is_dir():
        return 0
    with open(where / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0
        done = 0
        for path in sorted(where.glob("*.json")):
            try:
                row = _read(path)
            except OSError:
                log.error("intake spill: unreadable file %s left in place", path.name)
                continue
            except (ValueError, KeyError, TypeError) as exc:
                _set_aside(path, f"it holds no submit ({type(exc).__name__}: {exc})")
                continue
            try:
                insert(row)  # the database down or busy: the error propagates, the file stays
            except CONTENT_REFUSED as exc:
                _set_aside(path, f"the database refuses its row ({type(exc).__name__}: "
                                 f"{brief(exc.orig)})")
                continue
            path.unlink()
            done += 1
        if done:
            log.info("intake spill: %d submit(s) replayed into the intake table", done)
        return done


def _read(path: Path) -> dict[str, Any]:
    """The row a journal file holds. ValueError, KeyError or TypeError when it holds none."""
    from forms.models import Intake

    row = json.loads(path.read_text())
    if not isinstance(row, dict):
        raise TypeError(f"a JSON {type(row).__name__}, not an object")
    missing, unknown = _NEEDED - set(row), set(row) - set(Intake.__table__.columns.keys())
    if missing or unknown:
        raise KeyError(f"missing {sorted(missing)}, unknown {sorted(unknown)}")
    row["received_at"] = datetime.fromisoformat(row["received_at"])
    return row


def _set_aside(path: Path, why: str) -> None:
    """Move a file the database will never take out of the replay's way, keeping it."""
    aside = path.parent / REFUSED_FOLDER
    aside.mkdir(exist_ok=True)
    os.replace(path, aside / path.name)
    log.error("intake spill: %s set aside in %s/%s/, not replayed: %s. It is kept; look at it, "
              "fix it, then run `flask intake retry-refused`", path.name, FOLDER, REFUSED_FOLDER, why)


def retry_refused() -> tuple[int, int]:
    """Move every set-aside file back into the journal and replay it, once the cause is fixed
    (a file mended by hand, a release whose database takes the row). Returns (files retried,
    set aside again). A database that refuses everything stops it, as any replay."""
    aside = folder() / REFUSED_FOLDER
    retried = 0
    for path in sorted(aside.glob("*.json")) if aside.is_dir() else []:
        os.replace(path, folder() / path.name)
        retried += 1
    if retried:
        replay(wait=True)
    return retried, refused()


def refused() -> int:
    """How many journal files were set aside (`replay`): submits that wait for a person."""
    try:
        with os.scandir(folder() / REFUSED_FOLDER) as entries:
            return sum(1 for entry in entries if entry.name.endswith(".json"))
    except FileNotFoundError:
        return 0


def replay_soon() -> None:
    """Replay in a background thread of this process (never on the visitor's request)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def run() -> None:
        from forms.intake import kick

        with app.app_context():
            try:
                if replay():
                    kick()
            except (DBAPIError, OSError) as exc:
                log.warning("intake spill: replay stopped (%s); it will be tried again", brief(exc))

    threading.Thread(target=run, name="intake-spill-replay", daemon=True).start()
