"""Temporary files for the local store: a new file beside an object's final
name, written with plain descriptor calls.

No buffered file object: on the accept path each system call lets another
thread take the GIL, and a file object adds three (``fstat``, ``ioctl``,
``lseek``) to open, write and close. Names start with ``.tmp-``, which keys
never do (``check_key``) and which the store's sweep of stale files looks for.
"""

from __future__ import annotations

import errno
import itertools
import os
import secrets
from typing import TYPE_CHECKING, BinaryIO

from ingest_core.adapters.objects.common import _COPY_CHUNK

if TYPE_CHECKING:
    from pathlib import Path

_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_TEMP_TOKEN = secrets.token_hex(4)
_temp_numbers = itertools.count()


def open_temporary(folder: Path) -> tuple[int, str]:
    """A new ``.tmp-…`` file in ``folder``, open for writing with mode 0600. The
    name (process id, a random token, a counter) is new; an existing file is
    never opened (O_EXCL), a clash only costs another name."""
    for _ in range(100):
        name = f"{folder}/.tmp-{os.getpid():x}-{_TEMP_TOKEN}-{next(_temp_numbers):x}"
        try:
            return os.open(name, _TEMP_FLAGS, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))


def copy_to(source: BinaryIO, fd: int) -> int:
    """Everything ``source`` holds written to ``fd``; how many bytes."""
    written = 0
    while chunk := source.read(_COPY_CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
        written += len(chunk)
    return written
