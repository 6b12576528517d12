"""pytest plugin for people who write hunk sets (registered under the `pytest11` entry point).

- fixture `surgeon`: `surgeon.apply("priority")` (a set name, or the path of a set file) patches the
  installed vLLM's target modules in this process and returns them; undone when the test ends.
  `against="0.33.0"` builds them from another release's source instead, changing nothing here.
- marker `@pytest.mark.surgeon("priority", env={...})`: runs the test in a fresh interpreter with
  VLLM_SURGEON_HUNKS set, so the sets apply at import as in production; the child's result is the
  test's result. `subprocess=False` applies them in this process through the fixture instead.
- `--surgeon-sets=a,b`: run the session as if VLLM_SURGEON_HUNKS=a,b were set (checked at start);
  `--surgeon-strict` (ini `surgeon_strict = true`): before any test runs, check every set the session
  can enable (VLLM_SURGEON_HUNKS and every `surgeon` marker) and fail the session on a refusal.

Loaded by every pytest run in an environment where vllm-surgeon is installed, so it costs nothing
unless used: nothing from vllm_surgeon's internals (let alone vLLM) is imported at collection.
Disable it with `-p no:vllm_surgeon`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

MARKER = "surgeon"
_OUTPUT_TAIL = 60  # lines of a crashed child's output shown in the failure


def _child_reports() -> str:
    """In the fresh interpreter a `surgeon` marker starts: the file its test reports go to; else ''."""
    if "VLLM_SURGEON_PYTEST_CHILD" not in os.environ:  # _settings.PYTEST_CHILD; unset: import nothing at collection
        return ""
    from vllm_surgeon.core.settings import pytest_child

    return pytest_child()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vllm-surgeon", "vllm-surgeon (hunk sets for vLLM)")
    group.addoption(
        "--surgeon-sets", metavar="A,B", default=None,
        help="run the session as if VLLM_SURGEON_HUNKS=A,B were set: applied in this process and exported "
        "to every process the tests start; the session fails at start if one does not apply",
    )
    group.addoption(
        "--surgeon-strict", action="store_true", default=None,
        help="before any test runs, check every set the session can enable (VLLM_SURGEON_HUNKS, --surgeon-sets, "
        "every surgeon marker) against the installed vLLM; fail the session on any refusal",
    )
    parser.addini("surgeon_strict", type="bool", default=False, help="as --surgeon-strict")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*sets, sets=None, subprocess=True, env=None, timeout=None): run this test in a fresh interpreter "
        "with these vllm-surgeon sets enabled (VLLM_SURGEON_HUNKS), plus `env`; subprocess=False applies them in "
        "this process through the `surgeon` fixture",
    )
    child = _child_reports()
    if child:
        config.pluginmanager.register(_ChildReporter(config, child), "vllm_surgeon_child_reporter")
        _start_in_child()
        return
    names = config.getoption("surgeon_sets")
    if names:
        _enable_for_session(names)


def _start_in_child() -> None:
    """In the marker's fresh interpreter, start the runtime now, before collection imports anything:
    the `.pth` bootstrap waits for `import vllm` (issue 7), and a test of a set need not import vLLM
    first. A refused set is raised again by the import of each of its targets, failing those tests."""
    import sys

    from vllm_surgeon.core.settings import bootstrap
    from vllm_surgeon.sets.search import enabled_names

    if not enabled_names() or not bootstrap():
        return
    waiting = sys.modules.get("vllm_surgeon._bootstrap")
    if waiting is not None:
        waiting.disarm()
    from vllm_surgeon.core.refusal import SurgeonError
    from vllm_surgeon.runtime.runtime import runtime

    current = runtime()
    if current is not None:
        try:
            current.ensure_planned()
        except SurgeonError:
            pass


def _enable_for_session(value: str) -> None:
    from vllm_surgeon.core import settings as _settings
    from vllm_surgeon.sets.search import enabled_names

    wanted = enabled_names(value)
    present = enabled_names()
    if present and present != wanted:
        raise pytest.UsageError(
            f"--surgeon-sets={value} but {_settings.HUNKS}={os.environ[_settings.HUNKS]!r} is already set; use one"
        )
    os.environ[_settings.HUNKS] = ",".join(wanted)  # every process the tests start inherits it
    from vllm_surgeon.runtime.runtime import runtime

    try:
        current = runtime()
        if current is not None:
            current.sync()  # install the hook; patch in place what conftest files imported already
    except Exception as exc:
        raise pytest.UsageError(f"--surgeon-sets={value}: {exc}") from None


# -- the marker ---------------------------------------------------------------------------------------

class MarkerSpec:
    """A `surgeon` marker's arguments, checked."""

    def __init__(self, item: pytest.Item, marker: pytest.Mark) -> None:
        kwargs = dict(marker.kwargs)
        unknown = set(kwargs) - {"sets", "subprocess", "env", "timeout"}
        where = f"{item.nodeid}: @pytest.mark.{MARKER}"
        if unknown:
            raise pytest.UsageError(f"{where}: unknown argument(s) {', '.join(sorted(unknown))}")
        names: list[str] = []
        for value in [*marker.args, *([kwargs["sets"]] if kwargs.get("sets") is not None else [])]:
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)) or not all(isinstance(n, str) for n in items):
                raise pytest.UsageError(f"{where}: sets are names (str, or a list of str), not {value!r}")
            names += [n.strip() for n in items if n.strip()]
        if not names:
            raise pytest.UsageError(f"{where} names no set: write e.g. @pytest.mark.{MARKER}('priority')")
        self.sets = list(dict.fromkeys(names))
        self.subprocess = bool(kwargs.get("subprocess", True))
        env = kwargs.get("env") or {}
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise pytest.UsageError(f"{where}: env must be a dict of str to str, not {env!r}")
        self.env: dict[str, str] = env
        self.timeout = kwargs.get("timeout")
        if self.timeout is not None and (isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float))
                                         or self.timeout <= 0):
            raise pytest.UsageError(f"{where}: timeout is a number of seconds > 0, not {self.timeout!r}")


def _spec(item: pytest.Item) -> MarkerSpec | None:
    marker = item.get_closest_marker(MARKER)
    return MarkerSpec(item, marker) if marker is not None else None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    specs = []
    for item in items:
        spec = _spec(item)
        if spec is None:
            continue
        specs.append(spec)
        fixturenames = getattr(item, "fixturenames", None)
        if not spec.subprocess and fixturenames is not None and "surgeon" not in fixturenames:
            fixturenames.append("surgeon")  # the fixture applies the marker's sets in this process
    strict = config.getoption("surgeon_strict") or config.getini("surgeon_strict")
    if strict and not _child_reports():
        _check_strictly(specs)


def _check_strictly(specs: list[MarkerSpec]) -> None:
    """Plan every set the session can enable against the installed vLLM; UsageError naming each refusal."""
    from vllm_surgeon.sets.search import enabled_names

    groups: dict[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], str] = {}
    env_sets = enabled_names()
    if env_sets:
        groups[(tuple(env_sets), ())] = "VLLM_SURGEON_HUNKS"
    for spec in specs:
        groups.setdefault((tuple(spec.sets), tuple(sorted(spec.env.items()))), f"@pytest.mark.{MARKER}")
    problems = []
    for (names, env), where in groups.items():
        problem = _plan_problem(list(names), dict(env))
        if problem:
            problems.append(f"{where} {','.join(names)}:\n{problem}")
    if problems:
        head = "vllm-surgeon --surgeon-strict: a set does not apply to the installed vLLM"
        raise pytest.UsageError(head + "\n" + "\n\n".join(problems))


def _plan_problem(names: list[str], env: dict[str, str]) -> str | None:
    from vllm_surgeon.core.model import HunkFileError
    from vllm_surgeon.core.refusal import SurgeonError
    from vllm_surgeon.engine import planner
    from vllm_surgeon.sets.loader import UnknownSetError
    from vllm_surgeon.sets.search import load
    from vllm_surgeon.trees.installed import installed_vllm, read_installed

    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        try:
            sets = [load(n) for n in names]
        except (UnknownSetError, HunkFileError) as exc:
            return str(exc)
        plan = planner.plan(sets, read_installed, installed_vllm()[0])
    return str(SurgeonError(plan.refusals, {s.name: s for s in sets})) if plan.refusals else None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """A test marked `surgeon` (subprocess) runs in a fresh interpreter; its reports are replayed here."""
    if _child_reports():
        return None
    spec = _spec(item)
    if spec is None or not spec.subprocess:
        return None
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for report in _run_child(item, spec):
        ihook.pytest_runtest_logreport(report=report)
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    # What pytest's runner does at teardown: drop the fixtures of scopes the next item leaves.
    setupstate = getattr(item.session, "_setupstate", None)
    if setupstate is not None:
        setupstate.teardown_exact(nextitem)
    return True


_PASSED_ON = {"-p", "-o", "--override-ini", "--import-mode"}  # the parent's plugins and ini overrides


def _child_command(item: pytest.Item) -> list[str]:
    config = item.config
    path, _, rest = item.nodeid.partition("::")
    target = str(config.rootpath / path) + (f"::{rest}" if rest else "")
    command = [sys.executable, "-m", "pytest", target, "-p", "no:cacheprovider", "-q", "--no-header",
               "--rootdir", str(config.rootpath)]
    if config.inipath is not None:
        command += ["-c", str(config.inipath)]
    args = [str(a) for a in config.invocation_params.args]
    for i, arg in enumerate(args):
        option = arg.split("=", 1)[0]
        if arg in _PASSED_ON and i + 1 < len(args):
            command += [arg, args[i + 1]]
        elif option in _PASSED_ON or (arg[:2] in ("-p", "-o") and len(arg) > 2):
            command.append(arg)
    return command


def _run_child(item: pytest.Item, spec: MarkerSpec) -> list[Any]:
    from vllm_surgeon.core import settings as _settings

    config = item.config
    with tempfile.TemporaryDirectory(prefix="vllm-surgeon-pytest-") as scratch:
        reports_file = Path(scratch) / "reports.jsonl"
        env = dict(os.environ)
        env.update(spec.env)
        env[_settings.HUNKS] = ",".join(spec.sets)
        env[_settings.PYTEST_CHILD] = str(reports_file)
        command = _child_command(item)
        described = f"{_settings.HUNKS}={env[_settings.HUNKS]}" + "".join(f" {k}={v}" for k, v in spec.env.items())
        proc = subprocess.Popen(
            command, env=env, cwd=str(config.invocation_params.dir), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        output, timed_out = _wait(proc, spec.timeout)
        reports = _child_reports_from(config, reports_file)
    tests = [r for r in reports if getattr(r, "when", None) in ("setup", "call", "teardown")]
    header = f"ran in a fresh interpreter with {described} ({_exit_status(proc.returncode)}):\n  {' '.join(command)}"
    died = _death(proc.returncode, tests) if tests and not timed_out else None
    if tests and not timed_out and died is None:
        for report in tests:
            report.nodeid, report.location = item.nodeid, item.location
            if report.failed:
                report.sections.append(("vllm-surgeon subprocess", header))
        return tests
    if timed_out:
        why = f"the fresh interpreter did not finish within timeout={spec.timeout} s; it was killed"
    elif died is not None:  # issue 13: a test whose interpreter died vanished from the counts
        why = died
    elif reports:  # collection failed in the child: e.g. a refused set stopped `import vllm` at the top of the file
        why = "the test could not be collected in the fresh interpreter:\n" + "\n".join(
            str(r.longrepr) for r in reports if getattr(r, "failed", False)
        )
    else:
        why = f"the fresh interpreter reported no result for this test ({_exit_status(proc.returncode)})"
    tail = "\n".join(output.splitlines()[-_OUTPUT_TAIL:])
    return _synthesized(item, f"{why}\n{header}\n--- its output (last {_OUTPUT_TAIL} lines) ---\n{tail}")


def _exit_status(code: int | None) -> str:
    """How a child process ended, in words: `exit code 3`, `killed by signal 11 (SIGSEGV)`."""
    if code is not None and code < 0:
        try:
            name = f" ({signal.Signals(-code).name})"
        except ValueError:
            name = ""
        return f"killed by signal {-code}{name}"
    return f"exit code {code}"


def _death(code: int | None, tests: list[Any]) -> str | None:
    """Why the child's reports cannot be believed, or None: the interpreter died before its test's last
    report (teardown: `os._exit`, a segfault, SIGKILL), or it ended otherwise than pytest ends after
    one test (0 or 1; a plugin such as coverage may turn a pass into 1): a signal, a crash at exit."""
    phases = [r.when for r in tests]
    if "teardown" in phases and code in (0, 1):
        return None
    if "teardown" not in phases:
        return f"the fresh interpreter died after the test's {phases[-1]} report ({_exit_status(code)}): the test did not finish"
    return f"the fresh interpreter ended with {_exit_status(code)} after the test's reports: it did not exit cleanly"


def _wait(proc: subprocess.Popen, timeout: float | None) -> tuple[str, bool]:
    """The child's output, and whether it was killed at `timeout`. The child runs in a session of its own
    (a vLLM engine it starts is killed with it), so neither Ctrl-C nor a SIGTERM or SIGHUP sent to pytest
    reaches it: whatever stops this wait stops the child and all it started too (issue 13)."""
    with _stop_signals_interrupt():
        try:
            output, _ = proc.communicate(timeout=timeout)
            return output, False
        except subprocess.TimeoutExpired:
            _stop_group(proc, grace=0)
            output, _ = proc.communicate()
            return output, True
        except BaseException:
            _stop_group(proc, grace=_GRACE)
            raise


class _Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP while a marker test's child runs: pytest stops as on Ctrl-C, after the child."""


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """While the child runs, SIGTERM and SIGHUP interrupt pytest as Ctrl-C does, instead of ending it at once
    (their default) with the child, in a session of its own, left running. Only in the main thread, where
    Python runs signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise _Stopped(f"signal {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_GRACE = 5.0  # seconds an interrupted child gets to stop on SIGTERM (vLLM shuts its engine down) before SIGKILL


def _stop_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the child's process group, then SIGKILL it once `grace` seconds pass (at once with 0)."""
    if grace > 0 and proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(proc.pid, signal.SIGKILL)  # also what the child left running in its group
    if proc.poll() is None:
        proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _child_reports_from(config: pytest.Config, reports_file: Path) -> list[Any]:
    """The test reports the child wrote, one JSON line each, as pytest reports again."""
    reports = []
    if reports_file.exists():
        for line in reports_file.read_text().splitlines():
            report = config.hook.pytest_report_from_serializable(config=config, data=json.loads(line))
            if report is not None and isinstance(report.longrepr, list):
                report.longrepr = tuple(report.longrepr)  # a skip's (path, line, reason): JSON made it a list
            if report is not None:
                reports.append(report)
    return reports


def _synthesized(item: pytest.Item, text: str) -> list[Any]:
    from _pytest.reports import TestReport

    common: dict[str, Any] = dict(nodeid=item.nodeid, location=item.location, keywords={k: 1 for k in item.keywords})
    return [
        TestReport(outcome="passed", longrepr=None, when="setup", **common),
        TestReport(outcome="failed", longrepr=text, when="call", **common),
        TestReport(outcome="passed", longrepr=None, when="teardown", **common),
    ]


# -- inside the fresh interpreter ----------------------------------------------------------------------

def pytest_runtest_setup(item: pytest.Item) -> None:
    if _child_reports() and item.get_closest_marker(MARKER) is not None:
        from vllm_surgeon.runtime.runtime import runtime

        current = runtime()
        if current is not None:
            current.ensure_planned()  # a refused set fails the test here, even if it never imports vLLM


class _ChildReporter:
    """Registered only in the fresh interpreter: writes its test's reports for the parent to replay."""

    def __init__(self, config: pytest.Config, path: str) -> None:
        self.config = config
        self.path = path

    def _write(self, report: Any) -> None:
        data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
        if data is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(data) + "\n")

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._write(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._write(report)


# -- the fixture -------------------------------------------------------------------------------------

class Surgeon:
    """What the `surgeon` fixture gives a test: apply sets in this process, get the patched modules back."""

    def __init__(self) -> None:
        from vllm_surgeon.runtime.inprocess import InProcess

        self._session = InProcess()
        self._applied = False
        self._undone = False

    def apply(self, *sets: Any, against: str | None = None):
        """Patch the modules these sets change (names on the search path, or paths of set files), stacked in
        order as VLLM_SURGEON_HUNKS would; return them by module name. against=SPEC (as for `verify`):
        build them from that release's source instead, outside sys.modules. A refused set raises SurgeonError."""
        __tracebackhide__ = True
        from vllm_surgeon.runtime.inprocess import resolve_sets

        if self._applied:
            raise RuntimeError("surgeon.apply() was already called in this test: name every set in one call, "
                               "surgeon.apply('a', 'b'), so they are planned together (or surgeon.undo() first)")
        from vllm_surgeon.core.model import HunkFileError
        from vllm_surgeon.core.refusal import SurgeonError
        from vllm_surgeon.sets.loader import UnknownSetError

        try:
            hunk_sets = resolve_sets(sets)
            self._applied, self._undone = True, False
            return self._session.apply(hunk_sets, against)
        except (SurgeonError, UnknownSetError, HunkFileError) as exc:
            raise exc.with_traceback(None) from None  # the message says it all; the test's line is enough

    @property
    def modules(self):
        """The patched modules of the last `apply` (or of the test's in-process `surgeon` marker)."""
        if self._session.modules is None:
            if self._undone:
                raise RuntimeError("the sets were undone (surgeon.undo()): nothing is patched; call surgeon.apply(...) again")
            raise RuntimeError("no set applied yet: call surgeon.apply(...) first")
        return self._session.modules

    def undo(self) -> None:
        """Restore everything `apply` changed (done anyway when the test ends); `apply` may be called again."""
        self._session.undo()
        self._undone, self._applied = self._applied or self._undone, False


@pytest.fixture
def surgeon(request: pytest.FixtureRequest) -> Iterator[Surgeon]:
    """Apply vllm-surgeon sets to the installed vLLM in this process: `surgeon.apply("priority")` returns the
    patched modules by name; everything is undone when the test ends."""
    spec = _spec(request.node) if isinstance(request.node, pytest.Item) else None
    with pytest.MonkeyPatch.context() as mp:
        value = Surgeon()
        try:
            if spec is not None and not spec.subprocess and not _child_reports():
                for key, env_value in spec.env.items():
                    mp.setenv(key, env_value)
                value.apply(*spec.sets)
            yield value
        finally:
            value.undo()
