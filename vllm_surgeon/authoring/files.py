"""Every file the command line writes for the user (sets, proposals, work copies): one writer (issue 13).

Atomic (a reader sees the old file or the new one, never half), with the permissions the user
expects: an existing file keeps its mode, owner and group; a new one gets what the umask (and a
default ACL) gives, as `open()` would. (mkstemp made every file 0600: after `rebase --write` a set
the vLLM service reads as another user could no longer be read.) Every OS error names the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def refuse_existing(path: Path, force: bool) -> None:
    """The rule for every file a command writes: an existing one is replaced only with --force."""
    if not force and os.path.lexists(path):
        raise FileExistsError(f"{path} exists; pass --force to overwrite it, or --out to write elsewhere")


def write_text(path: Path, text: str) -> None:
    """Create or replace `path` with `text` (UTF-8), atomically. A final symlink is written through:
    the file it points to is replaced and the link stays (a set linked into a checkout)."""
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            existing: os.stat_result | None = os.stat(target)
        except FileNotFoundError:
            existing = None
        _replace(target, text.encode("utf-8"), existing)
    except OSError as exc:
        if exc.filename:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None


def _replace(target: Path, data: bytes, existing: os.stat_result | None) -> None:
    tmp = target.with_name(f".{target.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, _CREATE, 0o666)  # the umask applies, as for any file the user makes
    try:
        try:
            if existing is not None:
                _keep_owner_and_mode(fd, existing)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and not exc.filename:  # a full disk, a quota: say which file
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from None
        raise


def _keep_owner_and_mode(fd: int, existing: os.stat_result) -> None:
    """Give the new file the old one's owner and group (where this user may) and then its mode
    (chown clears set-id bits, so the mode comes last)."""
    if hasattr(os, "fchown") and (existing.st_uid, existing.st_gid) != (os.fstat(fd).st_uid, os.fstat(fd).st_gid):
        for uid in (existing.st_uid, -1):  # the owner only root may give; the group, any member of it
            try:
                os.fchown(fd, uid, existing.st_gid)
                break
            except PermissionError:
                continue
    os.fchmod(fd, stat.S_IMODE(existing.st_mode))
