"""The on-disk cache of patched code: hits, and every reason to ignore an entry (fake package, fresh interpreters)."""

import os
import stat

import pytest

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
import fakepkg.calc as calc, vllm_surgeon._runtime as r
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
    assert answer == "42", out.stderr
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
