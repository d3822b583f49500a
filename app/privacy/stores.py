"""Erasing an address from what lives outside the database: files under the instance folder
(local outbox `.eml` files, spill files of buffered hits) and Redis (queued jobs, buffers).

Both search for the address as bytes, case-insensitively, as a whole address: not inside a
longer one (erasing `ann@example.com` leaves `joann@example.com` and `ann@example.com.au`
alone), also as a URL escapes it (`ann%40example.com`) and as JSON escapes non-ASCII letters
(`zo\u00eb@example.com`, Python's default). A file that is one message (`.eml`)
is deleted; any other file loses the lines that hold the address. In Redis, a list or set
loses the members that hold it; any other key holding it (an RQ job: its payload is
decompressed to look) is deleted.
"""

from __future__ import annotations

import logging
import os
import re
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import current_app

from app.privacy.holders import Found

log = logging.getLogger(__name__)

# The database and Redis files are handled by their own servers; the secret is not data.
SKIP_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal", ".sqlite", ".rdb", ".sock")
SKIP_NAMES = {"secret_key", "redis.db.settings"}
MAX_FILE_BYTES = 64 * 1024 * 1024


def _needle(found: Found) -> bytes:
    return found.identity.lower().encode()


# What continues an address on either side: text there makes it part of another address.
_LOCAL_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789._+-")
_DOMAIN_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-")


_JSON_ESCAPE = re.compile(rb"\\u([0-9a-fA-F]{4})")


def _lower(data: bytes) -> bytes:
    return data.decode("utf-8", "surrogateescape").lower().encode("utf-8", "surrogateescape")


def _unescaped(data: bytes) -> bytes:
    """`data` with JSON's \\uXXXX and a URL's %XX escapes undone (unchanged without any)."""
    if b"\\u" in data:
        data = _JSON_ESCAPE.sub(
            lambda m: chr(int(m.group(1), 16)).encode("utf-8", "surrogatepass"), data)
    if b"%" in data:
        data = unquote_to_bytes(data)
    return data


def _mentions(data: bytes, needle: bytes, *, pickled: bool = False) -> bool:
    """Whether `data` holds the address `needle` (lower case) as a whole address, as it is or
    escaped. In a pickle (`pickled`) the byte before a string is its length, any byte."""
    if _whole(_lower(data), needle, pickled):
        return True
    plain = _unescaped(data)
    return plain != data and _whole(_lower(plain), needle, pickled)


def _length_bytes(length: int) -> set[int]:
    """A pickled string's length byte, as it is and lowered with the text around it."""
    return {length, bytes([length]).lower()[0]} if length < 256 else set()


def _whole(low: bytes, needle: bytes, pickled: bool) -> bool:
    start = low.find(needle)
    while start != -1:
        before = low[start - 1] if start else None
        end = start + len(needle)
        after = low[end:end + 2]
        glued_before = before is not None and before in _LOCAL_CHARS \
            and not (pickled and before in _length_bytes(len(needle)))
        glued_after = bool(after) and (after[0] in _DOMAIN_CHARS or (
            after[:1] == b"." and len(after) == 2 and after[1] in _DOMAIN_CHARS))
        if not glued_before and not glued_after:
            return True
        start = low.find(needle, start + 1)
    return False


def _files(root: Path):
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if name in SKIP_NAMES or name.endswith(SKIP_SUFFIXES) or path.is_symlink():
                continue
            try:
                if path.stat().st_size <= MAX_FILE_BYTES:
                    yield path
            except OSError:
                continue


def erase_files(found: Found) -> int:
    needle = _needle(found)
    touched = 0
    for path in _files(Path(current_app.instance_path)):
        try:
            content = path.read_bytes()
        except OSError:
            continue
        if not _mentions(content, needle):
            continue
        touched += 1
        if path.suffix == ".eml":
            path.unlink(missing_ok=True)
            continue
        kept = [line for line in content.splitlines(keepends=True)
                if not _mentions(line, needle)]
        tmp = path.with_name(path.name + ".erasing")
        tmp.write_bytes(b"".join(kept))
        os.replace(tmp, path)
    return touched


def _holds(value: Any, needle: bytes) -> bool:
    if not isinstance(value, bytes) or not value:
        return False
    if _mentions(value, needle):
        return True
    try:  # RQ keeps a job's call (function, arguments) as a zlib-compressed pickle
        return _mentions(zlib.decompress(value), needle, pickled=True)
    except zlib.error:
        return False


def erase_redis(found: Found) -> int:
    """Returns how many keys were changed. Redis down: logged, and 0 (the erasure's database
    part stands; running the erasure again finishes it)."""
    from app.queue import connection

    needle = _needle(found)
    try:
        conn: Any = connection()  # bytes in, bytes out (decode_responses is off)
        changed = 0
        for key in conn.scan_iter(count=1000):
            kind = conn.type(key)
            if kind == b"string":
                if _holds(conn.get(key), needle):
                    conn.delete(key)
                    changed += 1
            elif kind == b"list":
                hits = [v for v in conn.lrange(key, 0, -1) if _holds(v, needle)]
                for value in hits:
                    conn.lrem(key, 0, value)
                changed += bool(hits)
            elif kind == b"set":
                hits = [v for v in conn.smembers(key) if _holds(v, needle)]
                if hits:
                    conn.srem(key, *hits)
                    changed += 1
            elif kind == b"zset":
                hits = [v for v in conn.zrange(key, 0, -1) if _holds(v, needle)]
                if hits:
                    conn.zrem(key, *hits)
                    changed += 1
            elif kind == b"hash":
                items = conn.hgetall(key)
                if any(_holds(k, needle) or _holds(v, needle) for k, v in items.items()):
                    conn.delete(key)
                    changed += 1
        if changed and str(current_app.config.get("REDIS_URL", "")).startswith("unix://"):
            conn.save()  # the embedded server's dump file is under the instance folder
        return changed
    except Exception:  # Redis is not the source of truth; say so and go on
        log.warning("privacy: Redis could not be searched for an erased address", exc_info=True)
        return 0
