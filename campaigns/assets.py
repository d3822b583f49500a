"""Gated assets: storing an uploaded file safely, or accepting an external URL.

Uploads land under `<INSTANCE_PATH>/uploads/` with a random name; the original filename is kept
only for the download. Files are checked by extension and by their first bytes, and by size
while they are copied (the Content-Length header is not trusted).
"""

from __future__ import annotations

import io
import os
import re
import secrets
import zipfile
from typing import BinaryIO
from urllib.parse import urlsplit

from flask import current_app

from campaigns.models import Asset

DEFAULT_MAX_BYTES = 25 * 1024 * 1024
CHUNK = 64 * 1024

CONTENT_TYPES = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "zip": "application/zip",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "epub": "application/epub+zip",
    "mp4": "video/mp4",
}
ALLOWED_LABEL = "PDF, PNG, JPEG, ZIP, DOCX, XLSX, PPTX, EPUB or MP4"
# Office files are zip archives with their own part folder.
_OFFICE_PART = {"docx": "word/", "xlsx": "xl/", "pptx": "ppt/"}
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")


class UploadRejected(ValueError):
    """The file is not acceptable; the message is shown to the marketer."""


def uploads_dir() -> str:
    path = os.path.join(current_app.config["INSTANCE_PATH"], "uploads")
    os.makedirs(path, exist_ok=True)
    return path


def max_bytes() -> int:
    return int(current_app.config["ASSET_MAX_BYTES"])


def extension(filename: str) -> str:
    return filename.rpartition(".")[2].lower() if "." in filename else ""


def clean_filename(filename: str) -> str:
    """The original name without any path or control characters, for Content-Disposition."""
    name = _UNSAFE_NAME.sub("_", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    return name[-200:] or "download"


def _zip_names(head_path: str) -> list[str] | None:
    try:
        with zipfile.ZipFile(head_path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None


def _check_content(ext: str, head: bytes, path: str) -> None:
    """Refuse a file whose first bytes do not match its extension."""
    ok: bool
    if ext == "pdf":
        ok = head.startswith(b"%PDF-")
    elif ext == "png":
        ok = head.startswith(b"\x89PNG\r\n\x1a\n")
    elif ext in ("jpg", "jpeg"):
        ok = head.startswith(b"\xff\xd8\xff")
    elif ext == "mp4":
        ok = head[4:8] == b"ftyp"
    else:  # zip family
        ok = head.startswith(b"PK\x03\x04")
        if ok and ext != "zip":
            names = _zip_names(path)
            if names is None:
                ok = False
            elif ext == "epub":
                ok = "mimetype" in names and "META-INF/container.xml" in names
            else:
                ok = "[Content_Types].xml" in names and any(
                    n.startswith(_OFFICE_PART[ext]) for n in names)
    if not ok:
        raise UploadRejected(f"This file does not look like a {ext.upper()} file.")


def store_upload(stream: BinaryIO, filename: str) -> dict:
    """Copy an uploaded file into the uploads folder after checking it.

    Returns the Asset columns (stored_name, filename, content_type, size). Raises UploadRejected
    and leaves nothing behind when the type or the size is not acceptable.
    """
    original = clean_filename(filename or "")
    ext = extension(original)
    if ext not in CONTENT_TYPES:
        raise UploadRejected(f"Files of this type are not accepted. Upload a {ALLOWED_LABEL}.")
    limit = max_bytes()
    folder = uploads_dir()
    stored_name = f"{secrets.token_hex(16)}.{ext}"
    final = os.path.join(folder, stored_name)
    partial = final + ".part"
    size = 0
    try:
        with open(partial, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UploadRejected(
                        f"The file is larger than the {limit / 1024 / 1024:.0f} MB limit."
                        if limit >= 1024 * 1024 else
                        f"The file is larger than the {limit:,} byte limit.")
                out.write(chunk)
        if size == 0:
            raise UploadRejected("The file is empty.")
        with open(partial, "rb") as fh:
            head = fh.read(16)
        _check_content(ext, head, partial)
        os.replace(partial, final)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
    return {"stored_name": stored_name, "filename": original,
            "content_type": CONTENT_TYPES[ext], "size": size}


def store_bytes(data: bytes, filename: str) -> dict:
    """Store generated content (the demo seeder) through the same checks."""
    return store_upload(io.BytesIO(data), filename)


def remove_file(asset: Asset) -> None:
    if asset.stored_name:
        path = os.path.join(uploads_dir(), asset.stored_name)
        if os.path.exists(path):
            os.remove(path)


def file_exists(asset: Asset) -> bool:
    if not asset.stored_name:
        return False
    return os.path.exists(os.path.join(uploads_dir(), asset.stored_name))


def external_url_problem(url: str) -> str | None:
    """Why `url` cannot be an asset's external link, or None."""
    if not url or any(c.isspace() or ord(c) < 32 for c in url):
        return "Enter a full link without spaces, for example https://example.com/guide.pdf."
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Only http:// and https:// links are allowed."
    if len(url) > 2000:
        return "That link is too long."
    return None

