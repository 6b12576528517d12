"""On-disk cache of patched, compiled modules, so each vLLM process skips parsing and compiling.

Modeled on pytest's assertion-rewrite cache: the key is everything the result depends on
(Python, vllm-surgeon and its engine's code, every set file, every target module's path and
source, the vLLM version); writes are atomic; an entry that is missing, corrupt, not owned by
this user, or writable by others is ignored, and an unwritable cache directory only costs the
write. Every miss has a reason, kept in `reason` for logs and tests.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import stat
import sys
import tempfile
from pathlib import Path

from . import __version__
from ._engine import ModuleSource, PatchedModule
from ._linemap import Compiled
from ._model import HunkSet

# Engine modules whose code decides what a set turns a module into.
_ENGINE = ("_engine", "_linemap", "_scopes", "_anchor", "_layout", "_hunkfile", "_difffile", "_pyfile", "_transform", "_model")
_FORMAT = 1


def cache_dir() -> Path:
    from ._releases import cache_dir as root

    return root() / "code"


def key(sets: list[HunkSet], sources: dict[str, ModuleSource], vllm_version: str | None) -> str:
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for part in (sys.version, sys.implementation.cache_tag or "", __version__, str(_FORMAT), vllm_version or ""):
        digest.update(part.encode() + b"\0")
    for name in _ENGINE:
        digest.update((here / f"{name}.py").read_bytes())
    for s in sets:
        digest.update(s.name.encode() + b"\0" + Path(s.path).read_bytes() + b"\0")
    for module in sorted(sources):
        source = sources[module]
        digest.update(f"{module}\0{source.path}\0".encode() + source.text.encode())
    return digest.hexdigest()


class CodeCache:
    """One lookup or store; `reason` says why the last lookup missed (or that it hit)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or cache_dir()
        self.reason = "not looked up"

    def load(self, entry_key: str, sources: dict[str, ModuleSource]) -> dict[str, PatchedModule] | None:
        path = self.directory / f"{entry_key}.bin"
        try:
            info = path.stat()
        except FileNotFoundError:
            self.reason = "miss: no entry"
            return None
        except OSError as exc:
            self.reason = f"miss: unreadable ({exc})"
            return None
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            self.reason = "miss: entry owned by another user, ignored"
            return None
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            self.reason = "miss: entry writable by others, ignored"
            return None
        try:
            data = marshal.loads(path.read_bytes())
            if data["format"] != _FORMAT or data["key"] != entry_key:
                raise ValueError("another format or key")
            modules = {}
            for name, (origin, display, code, sets) in data["modules"].items():
                if origin != sources[name].path:
                    raise ValueError(f"{name} now lives elsewhere")
                # From the cache: what the import hook needs. In-place patching plans afresh.
                compiled = Compiled(display, code, None, [])
                modules[name] = PatchedModule(sources[name], None, tuple(sets), compiled, None)
        except Exception as exc:  # corrupt, truncated, or written by something else
            self.reason = f"miss: corrupt entry ({type(exc).__name__}: {exc})"
            return None
        self.reason = "hit"
        return modules

    def store(self, entry_key: str, modules: dict[str, PatchedModule]) -> None:
        payload = {
            "format": _FORMAT,
            "key": entry_key,
            "modules": {
                name: (m.source.path, m.compiled.display, m.compiled.code, list(m.sets)) for name, m in modules.items()
            },
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(marshal.dumps(payload))
                os.chmod(tmp, 0o644)
                os.replace(tmp, self.directory / f"{entry_key}.bin")
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            self.reason += f"; not stored ({exc})"
            return
        self.reason += "; stored"
