"""``ingest messages attachments REF [PART] --out DIR``: a message's stored
attachments as files, from whichever object store holds them (folder or S3).

File names come from the sanitised display names the extraction stored, made
safe once more here: one path component, no leading dot, no control characters,
never outside DIR (checked on the resolved path). A part without a name, or two
parts with the same one, are told apart by their part path. An existing file is
not replaced without ``--force``.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from typing import TYPE_CHECKING, Any

from ingest_core.errors import ObjectNotFound

if TYPE_CHECKING:
    import uuid
    from pathlib import Path

    from ingest_core import bootstrap

_MAX_NAME = 200
_CHUNK = 1 << 16


def safe_name(display: str | None, part_path: str) -> str:
    """A file name for one part: its display name made a single safe component,
    or ``part-<path>`` when nothing usable is left."""
    text = unicodedata.normalize("NFC", display or "")
    text = "".join("_" if ch in "/\\" or not ch.isprintable() else ch for ch in text)
    text = text.strip().lstrip(".").strip()
    if not text or text in (".", ".."):
        return f"part-{part_path}"
    if len(text) > _MAX_NAME:
        stem, dot, ext = text.rpartition(".")
        text = (stem[: _MAX_NAME - len(ext) - 1] + dot + ext) if dot and len(ext) < 16 else text
        text = text[:_MAX_NAME]
    return text


def file_names(attachments: list[dict[str, Any]]) -> dict[str, str]:
    """Part path → file name; names that two parts share get their part path in front."""
    names = {
        item["part_path"]: safe_name(item["filename"], item["part_path"]) for item in attachments
    }
    taken: dict[str, int] = {}
    for name in names.values():
        taken[name.lower()] = taken.get(name.lower(), 0) + 1
    return {
        part: (f"{part}-{name}" if taken[name.lower()] > 1 else name)
        for part, name in names.items()
    }


def write_attachments(
    app: bootstrap.App, message_id: uuid.UUID, part: str | None, out: Path, *, force: bool
) -> int:
    detail = app.operator.show_message(message_id)
    if detail is None:  # pragma: no cover - resolved a moment ago
        return 1
    attachments: list[dict[str, Any]] = detail.get("attachments") or []
    if part is not None:
        attachments = [item for item in attachments if item["part_path"] == part]
        if not attachments:
            parts = (
                ", ".join(item["part_path"] for item in detail.get("attachments") or []) or "none"
            )
            print(f"message {message_id} has no part {part!r} (parts: {parts})", file=sys.stderr)
            return 1
    if not attachments:
        print(f"message {message_id} has no attachments", file=sys.stderr)
        return 0
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"--out: cannot create {out} ({exc.strerror})", file=sys.stderr)
        return 2
    root = out.resolve()
    names = file_names(detail.get("attachments") or [])
    failed = 0
    for item in attachments:
        target = root / names[item["part_path"]]
        if target.resolve().parent != root:  # pragma: no cover - safe_name forbids it
            print(f"part {item['part_path']}: refusing a name outside {root}", file=sys.stderr)
            failed += 1
            continue
        try:
            written = _copy(app, item["object_key"], target, force=force)
        except FileExistsError:
            print(f"{target} exists; --force replaces it", file=sys.stderr)
            failed += 1
            continue
        except ObjectNotFound:
            print(
                f"part {item['part_path']}: object {item['object_key']} is missing", file=sys.stderr
            )
            failed += 1
            continue
        except OSError as exc:  # e.g. a symlink in the way (O_NOFOLLOW)
            print(f"{target}: {exc.strerror or type(exc).__name__}", file=sys.stderr)
            failed += 1
            continue
        print(f"{target}  ({written} bytes, part {item['part_path']})")
    return 1 if failed else 0


def _copy(app: bootstrap.App, key: str, target: Path, *, force: bool) -> int:
    """Stream the object into ``target`` (created new unless ``force``); a
    partial file is removed."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(target, flags, 0o644)
    written = 0
    try:
        with os.fdopen(fd, "wb") as sink, app.store.open(key) as source:
            while chunk := source.read(_CHUNK):
                sink.write(chunk)
                written += len(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return written
