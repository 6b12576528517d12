"""The on-disk cache of patched code: hits, and every reason to ignore an entry (fake package, fresh interpreters)."""

import hashlib
import marshal
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import fill, surgeon_env, tiny_filesystem

PKG = '''
def answer():
    value = 41
    return value
'''

SET = '''
@@ fakepkg.calc:answer
-    value = 41
+    value = 42
'''

PROBE = """
import fakepkg.calc as calc, vllm_surgeon.runtime.runtime as r
print(calc.answer(), "|", r.runtime().cache_reason)
"""


@pytest.fixture
def pkg(fakepkg, tmp_path):
    fakepkg.module("fakepkg.calc", PKG)
    fakepkg.hunk("fix", SET)
    fakepkg.cache = tmp_path / "cache"
    return fakepkg


def run(pkg):
    out = pkg.run(PROBE, hunks="fix", VLLM_SURGEON_CACHE_DIR=str(pkg.cache))
    answer, reason = out.stdout.strip().split(" | ")
    assert answer == ("43" if "value = 43" in (pkg.hunks / "fix.hunk").read_text() else "42"), out.stderr
    return reason


def entries(pkg):
    return sorted((pkg.cache / "code").glob("*.bin"))


def test_second_process_hits_and_a_changed_source_misses(pkg):
    assert run(pkg) == "miss: no entry; stored"
    assert run(pkg) == "hit"
    calc = pkg.src / "fakepkg" / "calc.py"
    calc.write_text(calc.read_text().replace("return value", "return value  # upstream edit"))
    assert run(pkg) == "miss: no entry; stored" and len(entries(pkg)) == 2


def test_corrupt_entry_is_ignored_and_replaced(pkg):
    run(pkg)
    (entry,) = entries(pkg)
    entry.write_bytes(b"\x00garbage")
    assert run(pkg).startswith("miss: corrupt entry") and run(pkg) == "hit"


def test_entry_writable_by_others_is_ignored(pkg):
    run(pkg)
    (entry,) = entries(pkg)
    entry.chmod(entry.stat().st_mode | stat.S_IWOTH)
    assert run(pkg).startswith("miss: entry writable by others")


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to give a file to another user")
def test_entry_owned_by_another_user_is_ignored(pkg):
    run(pkg)
    (entry,) = entries(pkg)
    os.chown(entry, 65534, 65534)
    assert run(pkg).startswith("miss: entry owned by another user")


def test_unwritable_cache_directory_only_costs_the_write(pkg):
    (pkg.cache / "code").mkdir(parents=True)
    (pkg.cache / "code").chmod(0o555)
    try:
        if os.access(pkg.cache / "code", os.W_OK):  # root ignores permissions: use a file where the directory goes
            (pkg.cache / "code").chmod(0o755)
            (pkg.cache / "code").rmdir()
            (pkg.cache / "code").write_text("not a directory")
        assert "not stored" in run(pkg)
    finally:
        if (pkg.cache / "code").is_dir():
            (pkg.cache / "code").chmod(0o755)


def test_cache_can_be_turned_off(pkg):
    out = pkg.run(PROBE, hunks="fix", VLLM_SURGEON_CACHE_DIR=str(pkg.cache), VLLM_SURGEON_CODE_CACHE="0")
    assert out.stdout.strip() == "42 | off (VLLM_SURGEON_CODE_CACHE=0)" and not entries(pkg)


# -- attacks (issue 7 items 1 and 3) ------------------------------------------------------------

NOBODY = 65534
as_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to act as another user")


def rewrite(entry, edit):
    """Re-encode a cache entry after `edit(payload_dict)`, with a valid digest (an attacker's or a bug's)."""
    from vllm_surgeon.runtime.cache import _DIGEST, _MAGIC

    data = entry.read_bytes()
    payload = marshal.loads(data[len(_MAGIC) + _DIGEST:])
    edit(payload)
    body = marshal.dumps(payload)
    entry.write_bytes(_MAGIC + hashlib.sha256(body).digest() + body)


def test_an_entry_that_is_a_symlink_is_never_followed(pkg, tmp_path):
    run(pkg)
    (entry,) = entries(pkg)
    elsewhere = tmp_path / "elsewhere.bin"
    shutil.move(entry, elsewhere)
    entry.symlink_to(elsewhere)  # even to a good entry of our own
    assert run(pkg) == "miss: entry is a symlink, ignored; stored"  # replaced by a real entry
    assert not entry.is_symlink() and run(pkg) == "hit"


def test_a_fifo_at_the_entry_is_a_miss_not_a_hang(pkg):
    run(pkg)
    (entry,) = entries(pkg)
    entry.unlink()
    os.mkfifo(entry)
    started = time.monotonic()
    assert run(pkg) == "miss: entry is not a regular file, ignored; stored"
    assert time.monotonic() - started < 60 and entry.is_file()


def test_truncated_and_flipped_entries_are_misses(pkg):
    run(pkg)
    (entry,) = entries(pkg)
    data = entry.read_bytes()
    entry.write_bytes(data[: len(data) // 2])
    assert run(pkg).startswith("miss: corrupt entry (ValueError: payload does not match its digest)")
    flipped = bytearray(data)
    flipped[-40] ^= 0x01  # a byte inside the marshalled code objects
    entry.write_bytes(bytes(flipped))
    assert run(pkg).startswith("miss: corrupt entry (ValueError: payload does not match its digest)")


def test_an_entry_missing_a_module_or_a_set_is_a_miss_even_with_a_valid_digest(pkg):
    run(pkg)
    (entry,) = entries(pkg)
    rewrite(entry, lambda p: p["modules"].pop("fakepkg.calc"))
    assert "the plan changes" in run(pkg)
    run(pkg)  # stored again

    def no_sets(payload):
        origin, display, code, sets, blame = payload["modules"]["fakepkg.calc"]
        payload["modules"]["fakepkg.calc"] = (origin, display, code, [], blame)

    rewrite(entry, no_sets)
    assert "was patched by [], the plan applies ['fix']" in run(pkg)


@as_root
def test_a_cache_directory_owned_by_another_user_is_not_trusted_nor_written(pkg):
    run(pkg)
    os.chown(pkg.cache / "code", NOBODY, NOBODY)
    reason = run(pkg)
    assert reason.startswith("miss: cache directory not safe, ignored") and "is owned by nobody (uid 65534)" in reason
    assert "not stored" in reason


@as_root
def test_a_foreign_directory_above_the_cache_root_is_not_trusted(pkg, tmp_path):
    foreign = tmp_path / "shared"
    foreign.mkdir()
    os.chown(foreign, NOBODY, NOBODY)
    pkg.cache = foreign / "cache"
    why = (f"{foreign} is owned by nobody (uid 65534), not by root (the user running this): its owner can change it "
           f"— fix: chown root {foreign}")
    assert run(pkg) == f"miss: no entry; not stored ({why})"
    assert not pkg.cache.exists()  # nothing made where it would not be trusted
    (pkg.cache / "code").mkdir(parents=True)  # made by someone: we still do not read from it
    assert run(pkg) == f"miss: cache directory not safe, ignored ({why}); not stored ({why})"


def test_writable_by_others_directories_are_refused_unless_sticky(pkg, tmp_path):
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    pkg.cache = open_dir / "cache"
    assert f"{open_dir} is writable by group root and by others (mode drwxrwxrwx, 0777)" in run(pkg)
    open_dir.chmod(0o1777)  # like /tmp: others cannot rename or remove what is ours in it
    assert run(pkg).endswith("stored") and run(pkg) == "hit"


# Issue 13 ("tests that pin the guarantees"): a hand-made mutant that dropped the refusal inside
# the cache root left the whole suite green. Inside the root, sticky is no excuse: a folder there
# that someone else can write lets them put an entry of theirs (code we would run) in our place.
@pytest.mark.parametrize("where, mode", [
    ("code", 0o770),  # the entries' folder, group-writable
    ("code", 0o707),  # ... world-writable
    ("code", 0o1777),  # ... sticky world-writable, as /tmp: above the root that would do, not inside it
    (".", 0o775),  # the cache root itself, group-writable
    (".", 0o1777),  # ... sticky
], ids=lambda v: f"{v:04o}" if isinstance(v, int) else ("root" if v == "." else v))
def test_cache_refuses_entry_in_group_writable_dir_inside_root(pkg, where, mode):
    assert run(pkg) == "miss: no entry; stored"
    folder = (pkg.cache / where).resolve()
    folder.chmod(mode)
    try:
        reason = run(pkg)  # the answer is still the patched one (run() checks): planned afresh, not read
    finally:
        folder.chmod(0o700)
    assert reason.startswith(f"miss: cache directory not safe, ignored ({folder} is writable by "), reason
    assert f"— fix: chmod go-w {folder})" in reason, reason
    assert "not stored" in reason  # nor written there
    assert run(pkg) == "hit"  # the same entry, once the folder is ours alone again


def test_cache_ignores_an_entry_writable_by_its_group(pkg):
    run(pkg)
    (entry,) = entries(pkg)
    entry.chmod(0o660)
    assert run(pkg).startswith("miss: entry writable by others, ignored")


def test_stale_temporary_files_go_and_old_entries_are_evicted_when_storing(pkg):
    from vllm_surgeon.runtime.cache import _MAGIC, MAX_ENTRIES, STALE_TMP_SECONDS

    run(pkg)
    code = pkg.cache / "code"
    old = time.time() - STALE_TMP_SECONDS - 60
    (code / ".tmp-4242-0123456789ab").write_bytes(b"half")  # a writer killed long ago
    os.utime(code / ".tmp-4242-0123456789ab", (old, old))
    (code / ".tmp-4343-0123456789ab").write_bytes(b"half")  # a writer at work right now
    for i in range(MAX_ENTRIES + 5):
        path = code / f"{i:064x}.bin"
        path.write_bytes(_MAGIC + b"x")
        os.utime(path, (old + i, old + i))
    calc = pkg.src / "fakepkg" / "calc.py"
    calc.write_text(calc.read_text() + "# another source: a new key, a store\n")
    assert run(pkg) == "miss: no entry; stored"
    assert not (code / ".tmp-4242-0123456789ab").exists() and (code / ".tmp-4343-0123456789ab").exists()
    assert len(entries(pkg)) == MAX_ENTRIES
    assert not (code / f"{0:064x}.bin").exists() and (code / f"{MAX_ENTRIES + 4:064x}.bin").exists()


def test_eviction_removes_only_the_caches_own_entries(pkg):
    """Issue 13: one `import vllm` deleted 7 of 70 foreign model_N.bin kept in the cache's folder."""
    from vllm_surgeon.runtime.cache import _MAGIC, MAX_ENTRIES, STALE_TMP_SECONDS

    run(pkg)
    code = pkg.cache / "code"
    old = time.time() - STALE_TMP_SECONDS - 60
    foreign = [code / f"model_{i}.bin" for i in range(70)]  # not our names
    foreign += [code / f"{i + 1000:064x}.bin" for i in range(5)]  # our names, not our header
    foreign += [code / ".tmp-notours", code / ".tmp-1-xyz"]  # not our writers' temporary names
    for n, path in enumerate(foreign):
        path.write_bytes(b"weights" * 10)
        os.utime(path, (old - 1000 + n, old - 1000 + n))  # older than any entry: first in line if they were ours
    ours = [code / f"{i:064x}.bin" for i in range(MAX_ENTRIES + 5)]
    for i, path in enumerate(ours):
        path.write_bytes(_MAGIC + b"x")
        os.utime(path, (old + i, old + i))
    calc = pkg.src / "fakepkg" / "calc.py"
    calc.write_text(calc.read_text() + "# another source: a new key, a store\n")
    assert run(pkg) == "miss: no entry; stored"
    assert [p.name for p in foreign if not p.exists()] == []
    assert sum(p.exists() for p in ours) == MAX_ENTRIES - 2  # with the two real ones, MAX_ENTRIES of ours


TRANSFORM_SET = '''
from helper_rules import NEW_VALUE
from vllm_surgeon import transform


@transform("fakepkg.calc:answer", anchor="value = 41")
def answer(node):
    import libcst as cst

    class Swap(cst.CSTTransformer):
        def leave_Integer(self, original, updated):
            return updated.with_changes(value=str(NEW_VALUE)) if updated.value == "41" else updated

    return node.visit(Swap())
'''


def test_a_py_set_is_never_served_from_the_cache_so_a_changed_helper_takes_effect(pkg):
    """Issue 13: a transform importing a helper module was served stale after the helper changed."""
    helper = pkg.src / "helper_rules.py"  # on the set's sys.path, beside the package it patches
    helper.write_text("NEW_VALUE = 42\n")
    (pkg.hunks / "fix.hunk").unlink()
    (pkg.hunks / "fix.py").write_text(TRANSFORM_SET.lstrip())

    def answer_and_reason():
        out = pkg.run(PROBE, hunks="fix", VLLM_SURGEON_CACHE_DIR=str(pkg.cache))
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert answer_and_reason() == "42 | not used: a .py set runs code the cache key cannot cover"
    helper.write_text("NEW_VALUE = 45\n")
    assert answer_and_reason() == "45 | not used: a .py set runs code the cache key cannot cover"
    assert not entries(pkg)


def test_a_cache_directory_that_cannot_be_expanded_is_said_and_not_used(pkg):
    """Issue 13: VLLM_SURGEON_CACHE_DIR='~nouser/x' raised a bare RuntimeError out of `import vllm`."""
    out = pkg.run(PROBE, hunks="fix", VLLM_SURGEON_CACHE_DIR="~nosuchuser13/x")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("42 | not used: VLLM_SURGEON_CACHE_DIR='~nosuchuser13/x' is not understood; "
                                  "~nosuchuser13 names no user on this system; write the directory's full path")
    assert "the code cache is not used (every vLLM process plans again)" in out.stderr
    assert "Traceback" not in out.stderr


@as_root
def test_swapping_a_foreign_entry_in_under_running_processes_never_runs_its_code(pkg, tmp_path):
    """The race of issue 7 item 1: another user swaps a symlink to their entry while processes start."""
    run(pkg)
    (entry,) = entries(pkg)
    evil = tmp_path / "evil.bin"
    shutil.copy(entry, evil)

    def poison(payload):
        origin, display, code, sets, blame = payload["modules"]["fakepkg.calc"]
        payload["modules"]["fakepkg.calc"] = (origin, display, compile("def answer():\n    return 666\n", origin, "exec"), sets, blame)

    rewrite(evil, poison)
    os.chown(evil, NOBODY, NOBODY)
    good = entry.read_bytes()
    stop = threading.Event()

    def attacker():
        side = tmp_path / "side.bin"
        while not stop.is_set():
            try:
                side.unlink(missing_ok=True)
                side.symlink_to(evil)
                os.replace(side, entry)  # the entry is now a symlink to the foreign file
                side.write_bytes(good)
                os.replace(side, entry)  # and a good file again
            except OSError:
                pass

    thread = threading.Thread(target=attacker, daemon=True)
    thread.start()
    try:
        env = pkg.env("fix", VLLM_SURGEON_CACHE_DIR=str(pkg.cache))
        code = "import vllm\n" + PROBE
        procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(12)]
        answers = [p.communicate(timeout=300)[0].split(" | ")[0] for p in procs]
    finally:
        stop.set()
        thread.join()
    assert answers == ["42"] * 12


@as_root
def test_as_another_user_roots_cache_is_not_trusted_and_its_own_works(vllm_dir):
    """The same fake package and set, run by root and then by `nobody` on root's cache and on its own."""
    base = Path(f"/tmp/h7-other-user-{uuid.uuid4().hex[:8]}")
    try:
        base.mkdir(mode=0o755)
        (base / "src" / "fakepkg").mkdir(parents=True)
        (base / "src" / "fakepkg" / "__init__.py").write_text("")
        (base / "src" / "fakepkg" / "calc.py").write_text(PKG.lstrip())
        (base / "src" / "vllm").mkdir()
        (base / "src" / "vllm" / "__init__.py").write_text("")
        (base / "src" / "vllm" / "compilation").symlink_to(vllm_dir / "compilation", target_is_directory=True)
        (base / "src" / "vllm" / "_version.py").symlink_to(vllm_dir / "_version.py")
        (base / "hunks").mkdir()
        (base / "hunks" / "fix.hunk").write_text(SET.lstrip())
        for path in [base, *base.rglob("*")]:
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)

        def as_user(cache: Path, user: int | None) -> str:
            env = surgeon_env(VLLM_SURGEON_HUNKS="fix", VLLM_SURGEON_PATH=str(base / "hunks"), PYTHONPATH=str(base / "src"),
                              VLLM_SURGEON_CACHE_DIR=str(cache), HOME=str(base))
            kw = {"user": user, "group": user, "extra_groups": []} if user is not None else {}
            out = subprocess.run([sys.executable, "-c", "import vllm\n" + PROBE], env=env, capture_output=True, text=True,
                                 timeout=300, cwd=base, **kw)
            answer, _, reason = out.stdout.strip().partition(" | ")
            assert answer == "42", out.stderr
            return reason

        roots = base / "root-cache"
        assert as_user(roots, None).endswith("stored")
        assert as_user(roots, None) == "hit"
        reason = as_user(roots, NOBODY)
        assert reason.startswith("miss: cache directory not safe") and "not stored" in reason
        theirs = base / "nobody-cache"
        theirs.mkdir()
        os.chown(theirs, NOBODY, NOBODY)
        assert as_user(theirs, NOBODY).endswith("stored") and as_user(theirs, NOBODY) == "hit"
        assert as_user(theirs, None).startswith("miss: cache directory not safe")  # and root does not trust nobody's
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_set_edited_between_reading_and_planning_is_keyed_on_what_was_planned(pkg):
    """Issue 7 item 2: the plan made from the old bytes was stored under the new file's key."""
    path = pkg.hunks / "fix.hunk"
    out = pkg.run(f"""
        import pathlib, vllm_surgeon.runtime.runtime as r
        rt = r.runtime()  # reads the set: value = 42
        path = pathlib.Path({str(path)!r})
        path.write_text(path.read_text().replace("value = 42", "value = 43"))
        rt.ensure_planned()
        import fakepkg.calc as calc
        print(calc.answer(), "|", rt.cache_reason)
    """, hunks="fix", trigger=False, VLLM_SURGEON_CACHE_DIR=str(pkg.cache))
    assert out.stdout.strip() == "42 | miss: no entry; stored", out.stderr
    assert run(pkg) == "miss: no entry; stored"  # the new bytes have their own key (and answer 43)
    path.write_text(path.read_text().replace("value = 43", "value = 42"))
    assert run(pkg) == "hit"  # the old bytes' entry, stored by the first process


def test_eight_cold_processes_at_once_all_run_patched_and_leave_one_entry(pkg):
    """What held in issue 13's second round (keep it holding): concurrent first starts race only to
    write the same entry; none reads half of another's, none removes another's."""
    env = pkg.env("fix", VLLM_SURGEON_CACHE_DIR=str(pkg.cache))
    code = "import vllm\n" + PROBE
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert all(out.startswith("42 | ") for out, _ in outs), outs
    assert len(entries(pkg)) == 1 and [p.name for p in (pkg.cache / "code").iterdir() if p.name.startswith(".")] == []
    assert run(pkg) == "hit"


def test_a_full_cache_filesystem_only_costs_the_write(pkg):
    """Held in issue 13's second round: a full cache is a write that fails, never a failed start."""
    with tiny_filesystem(pkg.cache, "64k"):
        (pkg.cache / "code").mkdir(mode=0o700)
        fill(pkg.cache)
        reason = run(pkg)
        assert "not stored" in reason and "No space left on device" in reason, reason
        assert not entries(pkg) and [p.name for p in (pkg.cache / "code").iterdir()] == []  # no temporary file left
