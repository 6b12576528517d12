"""Who can change a path: the owner, mode and filesystem of a file and of every directory from `/`
down to it, judged on open descriptors. One rule for the set reader (issue 13: sets are code) and
the code cache (issue 7).

- An object is safe when a trusted user owns it and nobody else can write it: not its group (unless
  that group is trusted), not others. What the system allows decides, not mode bits alone: nobody
  writes a read-only filesystem (fstatvfs ST_RDONLY), so a Kubernetes ConfigMap volume whose folder
  reads 0777 is safe. Its owner still counts: a read-only mount may show a folder that its owner
  can write elsewhere (a read-only bind mount). ACLs that grant writing show in the group bits.
- A directory above may be writable by others when it is sticky (/tmp): others can add entries
  there but cannot rename or remove one they do not own, and the entry we go through is checked to
  be a trusted user's. Where a rule says so (`sticky_place=False`: sets), the directory holding the
  file (or the directory asked for) may not: anyone could add files to it.
- Each directory is opened from `/` without following symlinks and checked through its descriptor;
  a symlink is followed by walking its target the same way. What was checked is what is read:
  nothing in between can be swapped by anyone but a trusted user.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

# Linux: O_PATH opens a directory for walking without needing read permission on it.
_WALK = (getattr(os, "O_PATH", 0) or os.O_RDONLY) | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_MAX_LINKS = 40  # as the kernel's ELOOP limit
# Where descriptors can be walked and owners mean something (not Windows): elsewhere nothing is checked.
SUPPORTED = (
    hasattr(os, "geteuid") and hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY")
    and {os.open, os.stat, os.readlink} <= os.supports_dir_fd
)


@dataclass(frozen=True)
class Rule:
    """Who may own an object and who else may write it."""

    owners: frozenset[int]  # uids trusted to own it
    group: int | None = None  # a trusted group: its members may own, and it may write
    sticky_above: bool = True  # a sticky directory writable by others is accepted above the place
    sticky_place: bool = False  # ... and as the place itself (the file's directory, or the directory asked for)


@dataclass(frozen=True)
class Problem:
    """Why someone other than the trusted can change `path`, and the command that fixes it."""

    path: str
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path} {self.what} — fix: {self.fix}"


@dataclass
class Opened:
    """The descriptor of what was asked for (the caller closes it), and why it is not safe (empty: safe)."""

    fd: int
    info: os.stat_result
    path: str  # the path as resolved (symlinks followed)
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class _Step:
    """One directory of a resolved path: its descriptor, and whether only its sticky bit made it safe."""

    path: str
    fd: int
    sticky: Problem | None


def euid() -> int:
    return os.geteuid()


@lru_cache(maxsize=64)
def login(uid: int) -> str | None:
    """The user name of `uid`, None for an id with no name."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return None


def user(uid: int) -> str:
    """`name (uid N)`, or `uid N` for an id with no name."""
    name = login(uid)
    return f"{name} (uid {uid})" if name else f"uid {uid}"


@lru_cache(maxsize=64)
def group_name(gid: int) -> str:
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return str(gid)


@lru_cache(maxsize=64)
def _member(uid: int, gid: int) -> bool:
    """Whether user `uid` belongs to group `gid` (as its primary group or a listed member)."""
    try:
        import grp
        import pwd

        entry = pwd.getpwuid(uid)
        return entry.pw_gid == gid or entry.pw_name in grp.getgrgid(gid).gr_mem
    except (ImportError, KeyError):
        return False


def _mode(info: os.stat_result) -> str:
    return f"mode {stat.filemode(info.st_mode)}, {stat.S_IMODE(info.st_mode):04o}"


def euid_words(group: int | None = None) -> str:
    """Who is trusted, in words: `root (the user running this)`, `you (alice, uid 1000) or root`, ..."""
    me = euid()
    name = login(me)
    who = "root (the user running this)" if me == 0 else f"you ({name + ', ' if name else ''}uid {me}) or root"
    return who + (f" or a member of group {group_name(group)}" if group is not None else "")


def owner_problem(path: str, info: os.stat_result, rule: Rule) -> Problem | None:
    """The owner is not trusted (see `Rule`)."""
    uid = info.st_uid
    if uid in rule.owners or (rule.group is not None and _member(uid, rule.group)):
        return None
    me = euid()
    fix = f"chown {login(me) or me} {path}"
    if me != 0:
        fix += " (as root), or copy it to a folder of yours"
    return Problem(path, f"is owned by {user(uid)}, not by {euid_words(rule.group)}: its owner can change it", fix)


def write_problem(path: str, info: os.stat_result, rule: Rule, read_only: Callable[[], bool]) -> Problem | None:
    """Someone else can write it: others, or a group that is not the trusted one (a read-only filesystem: nobody)."""
    group = bool(info.st_mode & stat.S_IWGRP) and info.st_gid != rule.group
    others = bool(info.st_mode & stat.S_IWOTH)
    if not (group or others) or read_only():
        return None
    who = " and by ".join(w for w, on in ((f"group {group_name(info.st_gid)}", group), ("others", others)) if on)
    fix = f"chmod go-w {path}"
    if group and rule.group is not None:
        fix += f", or chgrp {group_name(rule.group)} {path}"
    harm = "they can replace what is in it" if stat.S_ISDIR(info.st_mode) else "they can rewrite it"
    return Problem(path, f"is writable by {who} ({_mode(info)}): {harm}", fix)


def sticky_problem(path: str, info: os.stat_result) -> Problem:
    """A sticky folder others can write (/tmp): safe to pass through, not to hold what is read."""
    return Problem(
        path, f"is a folder anyone can add files to ({_mode(info)}, sticky like /tmp): not a safe place for sets",
        f"keep the sets in a folder of their own that only you and root can write (mkdir -m 755 {path}/NAME), "
        f"not directly in {path}",
    )


def readonly(fd: int) -> Callable[[], bool]:
    """Whether the filesystem holding `fd` is mounted read-only (asked only when a write bit makes it matter)."""

    def ask() -> bool:
        try:
            return bool(os.fstatvfs(fd).f_flag & os.ST_RDONLY)
        except (OSError, AttributeError):
            return False

    return ask


def _join(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name


class Walker:
    """Opens paths from `/` down, checking every step with `rule` (a Rule, or a function of the resolved
    path giving one). Directories walked stay open for the next path (a folder set's files share one
    walk) until close(); what `open_file`/`open_dir` return is the caller's to close."""

    def __init__(self, rule: Rule | Callable[[str], Rule]) -> None:
        self._rule_at: Callable[[str], Rule] = rule if callable(rule) else (lambda _path: rule)
        self._fds: list[int] = []
        self._dirs: dict[str, tuple[list[_Step], list[Problem]]] = {}

    def __enter__(self) -> Walker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        self._dirs.clear()

    # -- what callers ask --------------------------------------------------------------------------
    def open_file(self, path: str | os.PathLike[str]) -> Opened:
        """The file at `path`, opened without following a final symlink (one is walked instead) and
        non-blocking (a FIFO does not hang); OSError when it cannot be opened."""
        directory, name = os.path.split(_absolute(path))
        stack, problems = self._directory(directory)
        stack, opened, problems = self._resolve(stack, [name], list(problems), open_last=True)
        if opened is None:
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        try:
            problems += self._problems_of(opened.path, opened.fd, opened.info)
        except BaseException:
            os.close(opened.fd)
            raise
        opened.problems = _unique(problems)
        return opened

    def open_dir(self, path: str | os.PathLike[str]) -> Opened:
        """The directory at `path`, opened for reading (listing, *at calls); OSError when it cannot be."""
        stack, problems = self._directory(_absolute(path))
        problems = self._place(stack[-1], list(problems))
        fd = os.open(".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC, dir_fd=stack[-1].fd)
        return Opened(fd, os.fstat(fd), stack[-1].path, _unique(problems))

    def check_dir(self, path: str | os.PathLike[str]) -> list[Problem]:
        """Why the directory at `path` is not safe (empty: it is); OSError when it cannot be walked."""
        stack, problems = self._directory(_absolute(path))
        return _unique(self._place(stack[-1], list(problems)))

    # -- the walk -----------------------------------------------------------------------------------
    def _directory(self, path: str) -> tuple[list[_Step], list[Problem]]:
        """The steps down to directory `path` as resolved, and the problems on the way (kept for the next
        path under it; callers copy the list before adding to it)."""
        if path not in self._dirs:
            if path == "/":
                root, info = self._open_dir("/", None, "/")
                self._dirs[path] = ([root], self._problems_of("/", root.fd, info, root))
            else:
                parent, name = os.path.split(path)
                stack, problems = self._directory(parent)
                stack, _, problems = self._resolve(stack, [name], list(problems), open_last=False)
                self._dirs[path] = (stack, problems)
        return self._dirs[path]

    def _resolve(
        self, stack: list[_Step], todo: list[str], problems: list[Problem], open_last: bool
    ) -> tuple[list[_Step], Opened | None, list[Problem]]:
        """Walk the components of `todo` (last first; "/" restarts from the root) down from `stack`,
        following symlinks, opening and checking each directory. open_last: the final component, when
        no symlink, is opened as a file (without following a symlink) and returned."""
        links = 0
        while todo:
            name = todo.pop()
            if name == "/":
                stack = stack[:1]
                continue
            if name in ("", "."):
                continue
            if name == "..":
                stack = stack[:-1] if len(stack) > 1 else stack
                continue
            here = stack[-1]
            last = not todo
            try:  # never through a symlink: a symlink fails here (ENOTDIR, ELOOP) and is walked below
                if last and open_last:
                    return stack, self._open_file(name, here), self._place(here, problems)
                step, info = self._open_dir(name, here, _join(here.path, name))
            except OSError as exc:
                if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                info = os.stat(name, dir_fd=here.fd, follow_symlinks=False)
                if not stat.S_ISLNK(info.st_mode):
                    raise
                if last:  # the name is looked up here: who can add names here matters
                    problems = self._place(here, problems)
                links += 1
                self._push_link(here, name, info, todo, problems, links)
                continue
            problems += self._problems_of(step.path, step.fd, info, step)
            stack = stack + [step]
        return stack, None, problems

    @staticmethod
    def _open_file(name: str, here: _Step) -> Opened:
        flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC
        fd = os.open(name, flags, dir_fd=here.fd)
        try:
            return Opened(fd, os.fstat(fd), _join(here.path, name))
        except BaseException:
            os.close(fd)
            raise

    def _push_link(self, here: _Step, name: str, info: os.stat_result, todo: list[str], problems: list[Problem], links: int) -> None:
        """A symlink: its owner checked (in a sticky folder its owner could swap it), its target's
        components pushed onto `todo` (an absolute target: "/" last, to start again from the root)."""
        path = _join(here.path, name)
        if links > _MAX_LINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        problem = owner_problem(path, info, self._rule_at(path))
        if problem is not None:
            problems.append(problem)
        target = os.readlink(name, dir_fd=here.fd)
        todo.extend(reversed(target.split("/")))
        if target.startswith("/"):
            todo.append("/")

    def _open_dir(self, name: str, here: _Step | None, path: str) -> tuple[_Step, os.stat_result]:
        """Open a directory (never through a symlink) for walking; note whether only its sticky bit
        makes it safe, where the rule accepts that above the place."""
        fd = os.open(name, _WALK | _CLOEXEC, dir_fd=here.fd if here is not None else None)
        self._fds.append(fd)
        info = os.fstat(fd)
        sticky = None
        shared = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if info.st_mode & stat.S_ISVTX and shared and self._rule_at(path).sticky_above and not readonly(fd)():
            sticky = sticky_problem(path, info)
        return _Step(path, fd, sticky), info

    def _problems_of(self, path: str, fd: int, info: os.stat_result, step: _Step | None = None) -> list[Problem]:
        """Its owner, and who else can write it (not asked of a sticky directory accepted above the place)."""
        rule = self._rule_at(path)
        found = [owner_problem(path, info, rule)]
        if step is None or step.sticky is None:
            found.append(write_problem(path, info, rule, readonly(fd)))
        return [p for p in found if p is not None]

    def _place(self, step: _Step, problems: list[Problem]) -> list[Problem]:
        """`step` holds what is read: a sticky folder others write is no place for it, unless the rule says so."""
        if step.sticky is not None and not self._rule_at(step.path).sticky_place:
            problems.append(step.sticky)
        return problems


def _absolute(path: str | os.PathLike[str]) -> str:
    """`path` made absolute without resolving `..` by text (the walk resolves it as the kernel does)."""
    text = os.fspath(path)
    return text if text.startswith("/") else _join(os.getcwd(), text)


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
