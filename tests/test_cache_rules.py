"""The code cache's rules in this process (runtime/cache.py): what a lookup believes, what the key
covers, what eviction may remove. tests/test_code_cache.py checks the same through fresh vLLM-like
processes; these are fast enough to run per mutant (tools/mutate.py, issue 13)."""

import dataclasses
import errno
import hashlib
import marshal
import os
import stat
import time
from pathlib import Path

import pytest

from vllm_surgeon.core import trust
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine import planner
from vllm_surgeon.runtime import cache as _cache
from vllm_surgeon.runtime.cache import CodeCache
from vllm_surgeon.sets.hunkfile import parse_hunk_file

NOBODY = 65534
as_root = pytest.mark.skipif(not trust.SUPPORTED or os.geteuid() != 0, reason="needs root to give files to another user")

CALC = "def answer():\n    value = 41\n    return value\n"
SET = "@@ fakepkg.calc:answer\n-    value = 41\n+    value = 42\n"


def hunk_set(text: str = SET, name: str = "fix"):
    parsed = parse_hunk_file(text, f"/sets/{name}.hunk", name)
    return dataclasses.replace(parsed, digest=hashlib.sha256(text.encode()).hexdigest())


def sources(text: str = CALC, path: str = "/src/fakepkg/calc.py") -> dict[str, ModuleSource]:
    return {"fakepkg.calc": ModuleSource("fakepkg.calc", path, text)}


class Cache:
    """A cache under a private root, and the plan it keeps."""

    def __init__(self, root: Path) -> None:
        self.root = root / "cache"
        self.dir = self.root / "code"
        self.sets = [hunk_set()]
        self.sources = sources()
        self.key = _cache.key(self.sets, self.sources, "0.32.0")
        assert self.key is not None
        self.plan = planner.plan(self.sets, lambda m: self.sources.get(m), "0.32.0")
        assert self.plan.refusals == []

    def new(self) -> CodeCache:
        return CodeCache(self.dir, self.root)

    def store(self, key: str | None = None, targets: dict | None = None) -> CodeCache:
        c = self.new()
        c.reason = "miss"
        c.store(key or self.key, self.plan.modules, targets if targets is not None else {"fix": ("fakepkg.calc:answer",)})
        return c

    def load(self, key: str | None = None, srcs=None, planned=None) -> CodeCache:
        c = self.new()
        c.modules = c.load(key or self.key, srcs or self.sources, planned or _cache.planned_modules(self.sets))
        return c

    @property
    def entry(self) -> Path:
        return self.dir / f"{self.key}.bin"


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    tmp_path.chmod(0o755)
    return Cache(tmp_path)


def rewrite(entry: Path, edit) -> None:
    """Re-encode an entry after `edit(payload)`, with a valid digest (what a bug or an attacker writes)."""
    data = entry.read_bytes()
    payload = marshal.loads(data[len(_cache._MAGIC) + _cache._DIGEST:])
    edit(payload)
    body = marshal.dumps(payload)
    entry.write_bytes(_cache._MAGIC + hashlib.sha256(body).digest() + body)


# -- a hit ----------------------------------------------------------------------------------------

def test_a_stored_plan_is_a_hit_that_runs_the_patched_code_and_keeps_the_targets(cache):
    assert cache.store().reason == "miss; stored"
    assert oct(cache.dir.stat().st_mode & 0o777) == "0o700" and oct(cache.entry.stat().st_mode & 0o777) == "0o600"
    hit = cache.load()
    assert hit.reason == "hit" and hit.targets == {"fix": ("fakepkg.calc:answer",)}
    (module,) = hit.modules.values()
    assert module.from_cache and module.sets == ("fix",) and module.source.path == "/src/fakepkg/calc.py"
    namespace: dict = {}
    exec(module.compiled.code, namespace)
    assert namespace["answer"]() == 42


def test_no_cache_folder_is_a_miss_and_a_store_makes_it_private(cache):
    assert cache.load().reason == "miss: no entry"
    assert not cache.root.exists()
    cache.store()
    assert [oct(p.stat().st_mode & 0o777) for p in (cache.root, cache.dir)] == ["0o700", "0o700"]


# -- what the key covers ----------------------------------------------------------------------------

def test_the_key_changes_with_every_thing_the_result_depends_on(cache):
    base = _cache.key(cache.sets, cache.sources, "0.32.0")
    assert base == _cache.key([hunk_set()], sources(), "0.32.0")  # the same inputs: the same key
    others = [
        _cache.key(cache.sets, cache.sources, "0.33.0"),  # vLLM's version
        _cache.key(cache.sets, cache.sources, None),
        _cache.key([hunk_set(SET + "\n")], cache.sources, "0.32.0"),  # the set's bytes
        _cache.key([hunk_set(name="other")], cache.sources, "0.32.0"),  # its name
        _cache.key([dataclasses.replace(hunk_set(), path="/elsewhere/fix.hunk")], cache.sources, "0.32.0"),  # its file
        _cache.key(cache.sets, sources(CALC + "# edit\n"), "0.32.0"),  # the module's text
        _cache.key(cache.sets, sources(path="/elsewhere/calc.py"), "0.32.0"),  # where it lives
        _cache.key(cache.sets, {"fakepkg.other": sources()["fakepkg.calc"]}, "0.32.0"),  # which module
    ]
    assert base not in others and len(set(others)) == len(others)


def test_a_set_that_was_not_read_from_a_file_has_no_key(cache):
    assert _cache.key([dataclasses.replace(hunk_set(), digest="")], cache.sources, "0.32.0") is None
    assert _cache.key([hunk_set(), dataclasses.replace(hunk_set(name="b"), digest="")], cache.sources, "0.32.0") is None


def test_the_key_covers_the_code_of_every_planning_layer(monkeypatch, tmp_path):
    package = Path(_cache.__file__).resolve().parent.parent
    before = _cache._planning_code_digest()
    assert set(_cache._PLANNING_LAYERS) == {"core", "sets", "matching", "engine"}
    fake = tmp_path / "vllm_surgeon"
    for layer in ("runtime", *_cache._PLANNING_LAYERS):
        (fake / layer).mkdir(parents=True)
        for f in (package / layer).glob("*.py"):
            (fake / layer / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(_cache, "__file__", str(fake / "runtime" / "cache.py"))
    assert _cache._planning_code_digest() == before
    for layer in _cache._PLANNING_LAYERS:
        one = sorted((fake / layer).glob("*.py"))[-1]
        one.write_bytes(one.read_bytes() + b"\n")
        changed = _cache._planning_code_digest()
        assert changed != before, layer
        before = changed
    for f in (fake / "engine").glob("*.py"):
        if f.name != "__init__.py":
            f.unlink()
    with pytest.raises(RuntimeError, match="vllm-surgeon is incomplete: no modules in .*engine"):
        _cache._planning_code_digest()


def test_planned_modules_lists_every_set_of_a_module_in_order():
    a = hunk_set(name="a")
    b = hunk_set(name="b")
    assert _cache.planned_modules([a, b]) == {"fakepkg.calc": ("a", "b")}


# -- an entry is believed only when it holds exactly the plan ----------------------------------------

def test_an_entry_for_another_plan_is_a_miss_saying_why(cache):
    cache.store()
    assert "holds modules ['fakepkg.calc'], the plan changes ['fakepkg.other']" in cache.load(
        srcs={"fakepkg.other": cache.sources["fakepkg.calc"]}, planned={"fakepkg.other": ("fix",)}).reason
    assert "fakepkg.calc was patched by ['fix'], the plan applies ['fix', 'more']" in cache.load(
        planned={"fakepkg.calc": ("fix", "more")}).reason
    assert "fakepkg.calc now lives elsewhere" in cache.load(srcs=sources(path="/moved/calc.py")).reason


@pytest.mark.parametrize("edit, why", [
    (lambda p: p.update(format=_cache._FORMAT + 1), "another format or key"),
    (lambda p: p.update(key="0" * 64), "another format or key"),
    (lambda p: p["modules"]["fakepkg.calc"].__setitem__(2, "not code"), "fakepkg.calc: malformed"),
    (lambda p: p["modules"]["fakepkg.calc"].__setitem__(1, None), "fakepkg.calc: malformed"),
    (lambda p: p["modules"]["fakepkg.calc"].__setitem__(4, []), "fakepkg.calc: malformed"),
    (lambda p: p.update(targets=["fix"]), "malformed targets"),
])
def test_an_entry_with_a_valid_digest_but_not_what_this_cache_writes_is_a_miss(cache, edit, why):
    cache.store()
    rewrite(cache.entry, lambda p: p["modules"].update({k: list(v) for k, v in p["modules"].items()}))
    assert cache.load().reason == "hit"  # re-encoded as it was: still believed
    rewrite(cache.entry, edit)
    reason = cache.load().reason
    assert reason.startswith("miss: corrupt entry (ValueError: ") and why in reason, reason


def test_an_entry_without_targets_is_a_hit_with_none(cache):
    cache.store()
    rewrite(cache.entry, lambda p: p.pop("targets"))
    assert cache.load().reason == "hit" and cache.load().targets == {}


@pytest.mark.parametrize("damage, why", [
    (lambda data: b"", "not a vllm-surgeon cache entry"),
    (lambda data: data[: len(_cache._MAGIC) + _cache._DIGEST - 1], "not a vllm-surgeon cache entry"),
    (lambda data: b"X" + data[1:], "not a vllm-surgeon cache entry"),
    (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "payload does not match its digest"),
    (lambda data: data + b"x", "payload does not match its digest"),
])
def test_a_truncated_or_flipped_entry_is_a_miss(cache, damage, why):
    cache.store()
    cache.entry.write_bytes(damage(cache.entry.read_bytes()))
    reason = cache.load().reason
    assert reason.startswith("miss: corrupt entry") and why in reason, reason


# -- who can change an entry or a folder ---------------------------------------------------------------

@pytest.mark.parametrize("mode", [0o660, 0o606, 0o666, 0o620], ids=oct)
def test_an_entry_others_or_its_group_can_write_is_a_miss(cache, mode):
    cache.store()
    cache.entry.chmod(mode)
    assert cache.load().reason == "miss: entry writable by others, ignored"
    cache.entry.chmod(0o644)
    assert cache.load().reason == "hit"


@as_root
def test_an_entry_owned_by_another_user_is_a_miss(cache):
    cache.store()
    os.chown(cache.entry, NOBODY, NOBODY)
    assert cache.load().reason == "miss: entry owned by another user, ignored"


@as_root
def test_an_entry_of_root_is_not_trusted_by_another_user(cache, monkeypatch):
    cache.store()
    monkeypatch.setattr(_cache, "_euid", lambda: NOBODY)
    assert cache.load().reason.startswith("miss: entry owned by another user")


def test_an_entry_that_is_a_symlink_a_folder_or_a_fifo_is_a_miss(cache):
    cache.store()
    good = cache.entry.read_bytes()
    cache.entry.unlink()
    (cache.root / "elsewhere.bin").write_bytes(good)
    cache.entry.symlink_to(cache.root / "elsewhere.bin")
    assert cache.load().reason == "miss: entry is a symlink, ignored"
    cache.entry.unlink()
    os.mkfifo(cache.entry)
    assert cache.load().reason == "miss: entry is not a regular file, ignored"
    cache.entry.unlink()
    cache.entry.mkdir()
    assert cache.load().reason == "miss: entry is not a regular file, ignored"


def test_an_entry_larger_than_the_limit_is_a_miss_unread(cache, monkeypatch):
    cache.store()
    size = cache.entry.stat().st_size
    monkeypatch.setattr(_cache, "MAX_ENTRY_BYTES", size - 1)
    assert cache.load().reason == f"miss: entry larger than {size - 1} bytes, ignored"
    monkeypatch.setattr(_cache, "MAX_ENTRY_BYTES", size)
    assert cache.load().reason == "hit"


def test_a_hit_on_a_cache_that_cannot_record_the_clock_is_still_a_hit(cache, monkeypatch):
    cache.store()
    old = time.time() - _cache.TOUCH_SECONDS - 60
    os.utime(cache.entry, (old, old))

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(_cache.os, "utime", read_only)
    assert cache.load().reason == "hit"


def test_read_fd_stops_past_its_limit(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(ValueError, match="larger than 9 bytes"):
            _cache._read_fd(fd, 9)
        os.lseek(fd, 0, 0)
        assert _cache._read_fd(fd, 10) == b"x" * 10
    finally:
        os.close(fd)


@pytest.mark.parametrize("where", ["code", "root"])
@pytest.mark.parametrize("mode", [0o770, 0o707, 0o1777, 0o1770], ids=oct)
def test_a_folder_inside_the_root_others_can_write_is_never_read_nor_written_sticky_or_not(cache, where, mode):
    cache.store()
    folder = cache.dir if where == "code" else cache.root
    folder.chmod(mode)
    reason = cache.load().reason
    assert reason.startswith(f"miss: cache directory not safe, ignored ({folder} is writable by "), reason
    assert "not stored" in cache.store(key="1" * 64).reason and not (cache.dir / f"{'1' * 64}.bin").exists()
    folder.chmod(0o700)
    assert cache.load().reason == "hit"


@as_root
@pytest.mark.parametrize("where", ["code", "root"])
def test_a_folder_inside_the_root_owned_by_another_user_even_root_is_not_trusted(cache, where, monkeypatch):
    cache.store()
    folder = cache.dir if where == "code" else cache.root
    os.chown(folder, NOBODY, NOBODY)
    assert "is owned by nobody (uid 65534)" in cache.load().reason
    os.chown(folder, 0, 0)
    assert cache.load().reason == "hit"
    # Inside the root only the user counts: root's folder there is not another user's to trust.
    monkeypatch.setattr(os, "geteuid", lambda: NOBODY)
    monkeypatch.setattr(trust, "euid", lambda: NOBODY)
    assert _cache._rules(cache.root)(str(folder)) == trust.Rule(frozenset({NOBODY}), sticky_above=False)


@pytest.mark.parametrize("mode, safe", [(0o1777, True), (0o1775, True), (0o777, False), (0o775, False), (0o755, True)],
                         ids=["1777", "1775", "0777", "0775", "0755"])
def test_a_folder_above_the_root_may_be_shared_only_when_sticky(tmp_path, mode, safe):
    tmp_path.chmod(0o755)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    c = Cache(shared)
    assert c.store().reason.endswith("stored" if safe else ")")
    assert (c.load().reason == "hit") is safe
    if not safe:
        assert not c.root.exists()  # nothing made where it would not be read
        c.dir.mkdir(mode=0o700, parents=True)  # made by someone: still not read
        c.root.chmod(0o700)
        assert c.load().reason.startswith(f"miss: cache directory not safe, ignored ({shared} is writable by")


@as_root
def test_a_folder_above_the_root_may_be_roots_or_the_users_not_anothers(tmp_path):
    tmp_path.chmod(0o755)
    above = tmp_path / "above"
    above.mkdir()
    c = Cache(above)
    c.store()
    os.chown(above, NOBODY, NOBODY)
    assert "is owned by nobody" in c.load().reason
    assert _cache._rules(c.root)(str(above)) == trust.Rule(frozenset({os.geteuid(), 0}), sticky_above=True, sticky_place=True)


def test_the_rules_tell_inside_the_root_from_a_sibling_with_the_same_prefix(tmp_path):
    rule = _cache._rules(tmp_path / "cache")
    inside = rule(str(tmp_path / "cache"))
    assert rule(str(tmp_path / "cache" / "code")) == inside
    assert rule(str(tmp_path / "cache2")) != inside and rule(str(tmp_path)) != inside


def test_an_unwritable_place_only_costs_the_write(cache):
    cache.root.mkdir()
    cache.dir.write_text("a file where the folder goes")
    assert "not stored" in cache.store().reason
    assert cache.load().reason == "miss: cache directory not safe, ignored (code: Not a directory)"


# -- tidying: stale temporary files, eviction of our own entries only -----------------------------------

def entry_files(c: Cache) -> list[str]:
    return sorted(p.name for p in c.dir.iterdir())


def test_stale_temporary_files_go_recent_ones_and_foreign_names_stay(cache):
    cache.store()
    old = time.time() - _cache.STALE_TMP_SECONDS - 60
    names = [".tmp-1-0123456789ab", ".tmp-2-0123456789ab", ".tmp-x", "other.tmp"]
    for n in names:
        (cache.dir / n).write_bytes(b"half")
    for n in (".tmp-1-0123456789ab", ".tmp-x", "other.tmp"):
        os.utime(cache.dir / n, (old, old))
    cache.store(key="2" * 64)
    assert entry_files(cache) == sorted([".tmp-2-0123456789ab", ".tmp-x", "other.tmp", f"{cache.key}.bin", "2" * 64 + ".bin"])


def test_eviction_removes_the_least_recently_used_of_our_own_entries_past_the_count(cache, monkeypatch):
    monkeypatch.setattr(_cache, "MAX_ENTRIES", 3)
    old = time.time() - 1000
    for i in range(5):
        path = cache.store(key=f"{i:064x}") and cache.dir / f"{i:064x}.bin"
        os.utime(path, (old + i, old + i))
    foreign = cache.dir / f"{9:064x}.bin"  # our name, not our header
    foreign.write_bytes(b"weights")
    os.utime(foreign, (old - 10, old - 10))
    (cache.dir / "model.bin").write_bytes(_cache._MAGIC)  # our header, not our name
    cache.store(key=f"{5:064x}")
    kept = [n for n in entry_files(cache) if n.endswith(".bin")]
    assert kept == [f"{i:064x}.bin" for i in (3, 4, 5, 9)] + ["model.bin"]


def test_the_caps_are_the_documented_64_entries_and_512_mb():
    # docs/architecture.md: "the least recently used entries evicted (past 64 entries or 512 MB)"
    assert (_cache.MAX_ENTRIES, _cache.MAX_TOTAL_BYTES) == (64, 512 * 1024 * 1024)


def test_eviction_keeps_the_total_size_under_its_cap(cache, monkeypatch):
    cache.store(key=f"{0:064x}")
    size = (cache.dir / f"{0:064x}.bin").stat().st_size
    monkeypatch.setattr(_cache, "MAX_TOTAL_BYTES", 2 * size)
    old = time.time() - 1000
    for i in range(1, 4):
        cache.store(key=f"{i:064x}")
        os.utime(cache.dir / f"{i:064x}.bin", (old + i, old + i))
    os.utime(cache.dir / f"{0:064x}.bin", (old, old))
    cache.store(key=f"{4:064x}")
    # the cap holds the entries kept beside the one just written
    assert entry_files(cache) == [f"{i:064x}.bin" for i in (2, 3, 4)]


@as_root
def test_eviction_never_removes_another_users_file(cache, monkeypatch):
    monkeypatch.setattr(_cache, "MAX_ENTRIES", 1)
    cache.store(key=f"{0:064x}")
    os.chown(cache.dir / f"{0:064x}.bin", NOBODY, NOBODY)
    old = time.time() - _cache.STALE_TMP_SECONDS - 60
    (cache.dir / ".tmp-1-0123456789ab").write_bytes(b"half")
    os.chown(cache.dir / ".tmp-1-0123456789ab", NOBODY, NOBODY)
    os.utime(cache.dir / ".tmp-1-0123456789ab", (old, old))
    cache.store(key=f"{1:064x}")
    assert entry_files(cache) == [".tmp-1-0123456789ab", f"{0:064x}.bin", f"{1:064x}.bin"]


def test_a_hit_refreshes_an_old_entrys_clock_and_a_recent_one_is_left_alone(cache):
    cache.store()
    old = time.time() - _cache.TOUCH_SECONDS - 60
    os.utime(cache.entry, (old, old))
    cache.load()
    assert cache.entry.stat().st_mtime > time.time() - 60
    recent = time.time() - _cache.TOUCH_SECONDS + 60
    os.utime(cache.entry, (recent, recent))
    cache.load()
    assert abs(cache.entry.stat().st_mtime - recent) < 1


# -- what was checked is what is read and written ---------------------------------------------------

def swap_after_check(monkeypatch, cache: Cache, fill) -> Path:
    """After the cache folder is checked and opened, move it away and put another in its place
    (`fill(new_folder)`): what a race would do. The folder that was checked, where it went."""
    moved = cache.root / "checked"
    real_open_dir = _cache._open_dir

    def open_then_swap(directory, root):
        fd = real_open_dir(directory, root)
        os.rename(cache.dir, moved)
        cache.dir.mkdir(mode=0o700)
        fill(cache.dir)
        return fd

    monkeypatch.setattr(_cache, "_open_dir", open_then_swap)
    return moved


def test_the_entry_read_is_the_one_in_the_folder_that_was_checked(cache, monkeypatch):
    cache.store()
    swap_after_check(monkeypatch, cache, lambda new: (new / cache.entry.name).write_bytes(b"swapped in"))
    assert cache.load().reason == "hit"


def test_the_entry_written_goes_into_the_folder_that_was_checked(cache, monkeypatch):
    cache.store(key="1" * 64)
    stale = cache.dir / ".tmp-1-0123456789ab"
    stale.write_bytes(b"left by a killed writer")
    old = time.time() - _cache.STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))
    moved = swap_after_check(monkeypatch, cache, lambda new: None)
    assert cache.store().reason == "miss; stored"
    assert (moved / cache.entry.name).is_file() and not cache.entry.exists()
    assert not (moved / stale.name).exists()  # and tidied there


def test_the_first_unsafe_folder_from_the_top_is_named(cache):
    cache.store()
    cache.root.chmod(0o770)
    cache.dir.chmod(0o770)
    assert cache.load().reason.startswith(f"miss: cache directory not safe, ignored ({cache.root} is writable by")
    assert cache.store(key="1" * 64).reason.endswith(f"; not stored ({cache.root} is writable by group root (mode drwxrwx---, 0770): "
                                                      f"they can replace what is in it — fix: chmod go-w {cache.root})")


def test_the_cache_root_is_the_one_given_else_the_folders_parent_else_the_settings(tmp_path, monkeypatch):
    assert CodeCache(tmp_path / "a" / "b" / "code", tmp_path / "a").root == tmp_path / "a"
    assert CodeCache(tmp_path / "a" / "code").root == tmp_path / "a"
    monkeypatch.setenv("VLLM_SURGEON_CACHE_DIR", str(tmp_path / "settings"))
    assert (CodeCache().directory, CodeCache().root) == (_cache.cache_dir(), _cache.cache_root())
    assert _cache.cache_dir() == _cache.cache_root() / "code"


def test_a_write_uses_a_temporary_name_tidying_knows_and_removes_it_when_it_fails(cache, monkeypatch):
    names = []
    real_replace = os.replace

    def fails(src, dst, **kw):
        names.append(src)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(_cache.os, "replace", fails)
    assert "not stored" in cache.store().reason
    (name,) = names
    assert _cache._TMP_NAME.match(name), name  # a killed writer's file is one tidying removes
    assert [p.name for p in cache.dir.iterdir()] == []  # a failed write leaves nothing behind
    monkeypatch.setattr(_cache.os, "replace", real_replace)


def test_tidying_goes_past_folders_links_and_others_files(cache):
    cache.store(key="1" * 64)
    old = time.time() - _cache.STALE_TMP_SECONDS - 60
    for i in range(3):
        (cache.dir / f"sub{i}").mkdir()
        (cache.dir / f"link{i}").symlink_to(cache.root)
    stale = [cache.dir / f".tmp-{i}-0123456789ab" for i in range(20)]
    for path in stale:
        path.write_bytes(b"half")
        os.utime(path, (old, old))
    cache.store()
    assert [p for p in stale if p.exists()] == []


def test_a_temporary_name_already_taken_is_never_written_through(cache, monkeypatch):
    cache.store(key="1" * 64)
    elsewhere = cache.root / "elsewhere"
    elsewhere.write_bytes(b"not ours to write")
    monkeypatch.setattr(_cache.os, "urandom", lambda n: b"\x01" * n)
    (cache.dir / f".tmp-{os.getpid()}-{'01' * 6}").symlink_to(elsewhere)
    reason = cache.store().reason
    assert reason.startswith("miss; not stored (") and "File exists" in reason
    assert elsewhere.read_bytes() == b"not ours to write" and not cache.entry.exists()


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_no_descriptor_is_left_open_by_a_lookup_or_a_store(cache):
    cache.store(key="1" * 64)
    before = open_fds()
    cache.store()
    cache.load()
    cache.load(key="2" * 64)
    assert open_fds() == before
    assert _cache._FLAGS & os.O_CLOEXEC  # and none is inherited by a process started meanwhile


def test_an_entry_that_grows_past_the_limit_while_read_is_a_miss(cache, monkeypatch):
    cache.store()
    size = cache.entry.stat().st_size
    monkeypatch.setattr(_cache, "MAX_ENTRY_BYTES", size - 1)
    real_fstat = os.fstat

    def smaller_when_checked(fd):  # the size when checked; a writer is not done
        info = real_fstat(fd)
        return os.stat_result((*info[:6], 10, *info[7:])) if stat.S_ISREG(info.st_mode) else info

    monkeypatch.setattr(_cache.os, "fstat", smaller_when_checked)
    assert cache.load().reason == f"miss: unreadable (larger than {size - 1} bytes)"


def test_a_write_that_fails_only_costs_the_write(cache, monkeypatch):
    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(CodeCache, "_write", full)
    assert cache.store().reason == "miss; not stored ([Errno 28] No space left on device)"


def test_tidying_never_follows_a_symlink(cache):
    cache.store(key="1" * 64)
    old = time.time() - _cache.STALE_TMP_SECONDS - 60
    target = cache.root / "old"
    target.write_bytes(b"ours, old")
    os.utime(target, (old, old))
    link = cache.dir / ".tmp-1-0123456789ab"
    link.symlink_to(target)
    cache.store()
    assert link.is_symlink() and target.exists()


def test_one_store_evicts_exactly_as_many_of_the_oldest_as_the_count_cap_needs(cache, monkeypatch):
    monkeypatch.setattr(_cache, "MAX_ENTRIES", 3)
    cache.dir.mkdir(parents=True)
    os.chmod(cache.root, 0o700)
    old = time.time() - 1000
    for i in range(5):
        path = cache.dir / f"{i:064x}.bin"
        path.write_bytes(_cache._MAGIC + b"x")
        os.utime(path, (old + i, old + i))
    cache.store()
    assert entry_files(cache) == sorted([f"{3:064x}.bin", f"{4:064x}.bin", cache.entry.name])


def test_creating_the_cache_under_unsafe_folders_names_the_topmost(tmp_path):
    tmp_path.chmod(0o755)
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a").chmod(0o777)
    (tmp_path / "a" / "b").chmod(0o777)
    c = Cache(tmp_path / "a" / "b")
    assert c.store().reason.startswith(f"miss; not stored ({tmp_path / 'a'} is writable by")
    assert not c.root.exists()
