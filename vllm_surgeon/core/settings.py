"""Every `VLLM_SURGEON_*` environment variable: its name, default and parsing, read here only.

A bad value is a `SettingError` naming the variable and the value (docs/running.md "Environment variables"). Standard
library only and nothing at import time but `os`: the bootstrap path asks it in every vLLM process.
Two readers cannot ask it: the one-line `vllm_surgeon.pth` (it runs before any import, so it reads
`HUNKS` and `BOOTSTRAP` itself, as `hunks_named()` and `bootstrap()` do) and the bundled `priority`
set (it runs inside vLLM's scheduler and reads `PRIORITY_AGING` itself).
"""

from __future__ import annotations

import os

HUNKS = "VLLM_SURGEON_HUNKS"  # the sets enabled, by name, comma-separated, in order
PATH = "VLLM_SURGEON_PATH"  # directories searched for sets first (os.pathsep-separated)
ON_FAILURE = "VLLM_SURGEON_ON_FAILURE"  # fail (default: stop vLLM's start) or warn (run without the set)
BOOTSTRAP = "VLLM_SURGEON_BOOTSTRAP"  # 0: the .pth installs nothing; the vLLM plugin patches in place
CACHE_DIR = "VLLM_SURGEON_CACHE_DIR"  # the code cache and wheels; default $XDG_CACHE_HOME/vllm-surgeon
CODE_CACHE = "VLLM_SURGEON_CODE_CACHE"  # 0: plan in every process, never read or write the code cache
PRIORITY_AGING = "VLLM_SURGEON_PRIORITY_AGING"  # read by the bundled `priority` set inside vLLM
# A group (name or gid) whose members may own and write set files and folders (issue 13); unset: none.
# Every member can then run code as whoever starts vLLM: README "Sets are code" says so.
TRUSTED_GROUP = "VLLM_SURGEON_TRUSTED_GROUP"
# Every setting a user may set; anything else starting with VLLM_SURGEON_ is likely a typo (doctor).
NAMES = (HUNKS, PATH, ON_FAILURE, BOOTSTRAP, CACHE_DIR, CODE_CACHE, PRIORITY_AGING, TRUSTED_GROUP)

# Marks vllm-surgeon leaves for the processes it starts; never set by users.
PYTEST_CHILD = "VLLM_SURGEON_PYTEST_CHILD"  # in the pytest plugin's child: the file its test reports go to
WARNED = "_VLLM_SURGEON_WARNED"  # warnings said in full once per run (_warn_once)

POLICIES = ("fail", "warn")


class SettingError(ValueError):
    """A VLLM_SURGEON_* variable holds a value vllm-surgeon does not understand."""

    def __init__(self, name: str, value: str, expected: str) -> None:
        super().__init__(f"{name}={value!r} is not understood; {expected}")
        self.name = name
        self.value = value


def _get(name: str) -> str:
    return os.environ.get(name, "")


def split_names(value: str) -> list[str]:
    """Set names in a comma-separated list, in order, without repeats or blanks."""
    return list(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))


def hunks() -> list[str]:
    """The names in VLLM_SURGEON_HUNKS, in order, without repeats."""
    return split_names(_get(HUNKS))


def hunks_named() -> bool:
    """Whether VLLM_SURGEON_HUNKS names any set (" , " names none), as the .pth line decides it."""
    return bool(_get(HUNKS).replace(",", "").strip())


def search_path() -> list[str]:
    """The VLLM_SURGEON_PATH entries, stripped, blanks left out (not yet made absolute)."""
    return [e.strip() for e in _get(PATH).split(os.pathsep) if e.strip()]


def user_path(value: str, absolute: bool = True) -> str:
    """A path as a user wrote it (a setting, an --against argument): `~` and `~user` expanded, made
    absolute unless told not to. The one place that expands them (issue 13: `Path.expanduser` raised a bare RuntimeError
    for `~nouser/x` from list, doctor, verify and `import vllm`); ValueError saying why it cannot be."""
    expanded = os.path.expanduser(value)
    if expanded.startswith("~"):  # os.path.expanduser leaves what it cannot expand as it was
        user = expanded[1:].split(os.sep, 1)[0].split("/", 1)[0]
        if user:
            raise ValueError(f"~{user} names no user on this system; write the directory's full path")
        raise ValueError("the home directory (~) cannot be determined (HOME is unset); write the full path")
    return os.path.join(os.getcwd(), expanded) if absolute and not os.path.isabs(expanded) else expanded


def search_dirs() -> list[str]:
    """The VLLM_SURGEON_PATH directories, expanded and absolute; SettingError for one that cannot be."""
    dirs = []
    for entry in search_path():
        try:
            dirs.append(user_path(entry))
        except ValueError as exc:
            which = f"entry {entry!r}: " if entry != _get(PATH).strip() else ""
            raise SettingError(PATH, _get(PATH), f"{which}{exc}") from None
    return dirs


def on_failure() -> str:
    """'fail' (the default) or 'warn'; case and surrounding blanks do not matter."""
    value = _get(ON_FAILURE)
    policy = value.strip().lower() or "fail"
    if policy not in POLICIES:
        raise SettingError(ON_FAILURE, value, "use 'fail' (the default: stop vLLM's start) or 'warn' (log and run without the set)")
    return policy


def bootstrap() -> bool:
    """Whether the .pth bootstrap is on: off only for exactly '0', as the .pth line reads it (it cannot
    raise; `problems()` reports any other value but '1')."""
    return _get(BOOTSTRAP) != "0"


def code_cache() -> bool:
    """Whether the on-disk code cache is used: '1' or unset (default) on, '0' off."""
    value = _get(CODE_CACHE)
    if value.strip() not in ("", "0", "1"):
        raise SettingError(CODE_CACHE, value, "use '0' (plan in every process) or '1' (the default: use the code cache)")
    return value.strip() != "0"


def trusted_group() -> int | None:
    """The gid VLLM_SURGEON_TRUSTED_GROUP names (a group name or a number), None when unset or empty."""
    value = _get(TRUSTED_GROUP)
    name = value.strip()
    if not name:
        return None
    if name.isdigit():
        return int(name)
    try:
        import grp

        return grp.getgrnam(name).gr_gid
    except (ImportError, KeyError):
        raise SettingError(TRUSTED_GROUP, value, "name a group that exists (`getent group NAME`) or its gid, or unset it") from None


def cache_dir() -> str | None:
    """VLLM_SURGEON_CACHE_DIR expanded and absolute, or None when unset or empty (the default applies);
    SettingError when it cannot be expanded."""
    value = _get(CACHE_DIR)
    if not value:
        return None
    try:
        return user_path(value)
    except ValueError as exc:
        raise SettingError(CACHE_DIR, value, str(exc)) from None


def cache_root() -> str:
    """The cache folder: VLLM_SURGEON_CACHE_DIR, else $XDG_CACHE_HOME/vllm-surgeon, else
    ~/.cache/vllm-surgeon; SettingError when none can be expanded."""
    explicit = cache_dir()
    if explicit:
        return explicit
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec: a relative value is invalid and ignored
        return os.path.join(xdg, "vllm-surgeon")
    try:
        return user_path("~/.cache/vllm-surgeon")
    except ValueError as exc:
        raise SettingError(CACHE_DIR, "", f"it is unset and {exc}") from None


def pytest_child() -> str:
    """In the pytest plugin's child: the file its test reports go to; '' elsewhere."""
    return _get(PYTEST_CHILD)


def problems() -> list[SettingError]:
    """Every setting whose value is not understood (the doctor lists them)."""
    found = []
    for check in (on_failure, code_cache, trusted_group):  # PATH and CACHE_DIR: the doctor checks them as what they are
        try:
            check()
        except SettingError as exc:
            found.append(exc)
    value = _get(BOOTSTRAP)
    if value not in ("", "0", "1"):
        found.append(SettingError(BOOTSTRAP, value, "use '0' (no bootstrap: the vLLM plugin patches in place) or '1' "
                                  "(the default); the .pth line reads every value but '0' as on"))
    return found


def unknown() -> list[str]:
    """Variables starting with VLLM_SURGEON_ that are no setting (likely typos), sorted."""
    return sorted(k for k in os.environ if k.startswith("VLLM_SURGEON_") and k not in NAMES and k != PYTEST_CHILD)
