"""Patch sites, found statically in a patch package: what each patches, and with what.

Shapes (issue 16): `Target.attr = f`, `setattr(Target, "attr", f)`, `module.name = f`, a class
swapped for one that overrides methods (`module.Cls = Sub`), members of `VLLMPatch[Target]` /
`ArcticPatch[Target]` classes, calls of helpers the user names (`helper(obj, "name", f)`), and
`unittest.mock.patch("vllm.x.f", f)`. A target is resolved through the file's imports (module-level,
inside the function around the site, and the module a `@when_imported("vllm.x")` hook receives),
then through the release's own imports to its definition. A replacement is a def of a scanned file.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from vllm_surgeon.adopt import bindings
from vllm_surgeon.adopt.adoption import Copy
from vllm_surgeon.adopt.patchfile import PatchFile
from vllm_surgeon.adopt.resolve import Found, Resolver, attribute_chain

# VLLMPatch (the vLLM blog's plugin post) applies public members only; ArcticPatch all but these.
PATCH_CLASSES = {"VLLMPatch": "public", "ArcticPatch": "all"}
_ARCTIC_SKIPS = frozenset({"_arctic_patch_target", "__dict__", "__weakref__", "__module__", "__doc__", "__parameters__"})
Func = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass
class Site:
    """One place a patch package replaces something in vLLM."""

    file: PatchFile
    line: int
    kind: str
    written: str  # the target as the file writes it
    owner: Found | None = None  # the class or module patched (None: not resolved into the tree)
    attr: str = ""
    copy: Copy | None = None
    why: str = ""  # why there is no def to adopt (a lambda, a value, a factory...)
    wrapper: str = ""  # evidence that the replacement calls the original
    notes: list[str] = field(default_factory=list)
    original: str | None = None  # `_orig_f = Target.f`: the attribute kept (`f`), what its digest is of

    @property
    def location(self) -> str:
        return f"{self.file.path}:{self.line}"

    @property
    def target(self) -> str:
        """The definition patched ('module:Qual.name'), or the target as written when unresolved."""
        if self.owner is None:
            return self.written
        if self.owner.kind == "module":
            return f"{self.owner.module}:{self.attr}"
        return f"{self.owner.target}.{self.attr}"


@dataclass
class _Context:
    """Where a statement sits: its file and the functions around it (innermost last)."""

    file: PatchFile
    functions: list[Func]


class Finder:
    """Sites in `files` (read statically), resolved against `resolver`'s tree."""

    def __init__(self, files: list[PatchFile], resolver: Resolver, helpers: frozenset[str] = frozenset(), where: str = "") -> None:
        self.files = files
        self.resolver = resolver
        self.helpers = helpers
        self.where = where or "the release"
        name_modules(files)
        self.by_module = {f.module: f for f in files if f.module}
        self._by_path = {f.path.absolute().with_suffix("").as_posix(): f for f in files}
        self._local: dict[int, dict[str, bindings.Binding]] = {}  # by id() of a def of `files`, which stay alive

    def sites(self) -> list[Site]:
        out: list[Site] = []
        for file in self.files:
            self._walk(_Context(file, []), file.tree.body, out)
        # A copy calling an original that the package saves elsewhere (`cfg._orig_get_num_kv_heads()`,
        # kept by another patch class) depends on that monkey patch staying: it stays one too.
        saved = {site.attr: site for site in out if site.original}
        for site in out:
            if site.copy is not None and not site.wrapper:
                used = sorted({n.attr for n in ast.walk(site.copy.node) if isinstance(n, ast.Attribute)} & set(saved))
                if used:
                    keeper = saved[used[0]]
                    site.wrapper = f"calls {used[0]}, the original {keeper.written} keeps ({keeper.location})"
        return out

    # -- walking statements

    def _walk(self, ctx: _Context, body: list[ast.stmt], out: list[Site]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Attribute):
                self._assignment(ctx, stmt, stmt.targets[0], stmt.value, out)
            elif isinstance(stmt, ast.Expr | ast.Assign) and isinstance(stmt.value, ast.Call):
                self._call(ctx, stmt.value, out)  # `patch_or_inject(...)`, `patcher = mock.patch(...)`
            if isinstance(stmt, ast.ClassDef):
                self._patch_class(ctx, stmt, out)
                self._walk(ctx, [m for m in stmt.body if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)], out)
            elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                self._walk(_Context(ctx.file, ctx.functions + [stmt]), stmt.body, out)
            else:
                for block in ("body", "orelse", "finalbody"):
                    inner = getattr(stmt, block, None)
                    if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                        self._walk(ctx, inner, out)
                for handler in getattr(stmt, "handlers", []):
                    self._walk(ctx, handler.body, out)

    def _assignment(self, ctx: _Context, stmt: ast.stmt, target: ast.Attribute, value: ast.expr, out: list[Site]) -> None:
        owner = self._owner(ctx, target.value)
        if isinstance(owner, Found):
            out += self._site(ctx, stmt.lineno, "assign", ast.unparse(target), owner, target.attr, value)
        elif owner is not None:  # it names vLLM, and the release has no such thing: a dead patch
            out.append(Site(ctx.file, stmt.lineno, "assign", f"{owner}.{target.attr}", why=f"{owner} is not in {self.where}"))

    def _call(self, ctx: _Context, call: ast.Call, out: list[Site]) -> None:
        if isinstance(call.func, ast.Attribute) and call.func.attr == "start" and isinstance(call.func.value, ast.Call):
            call = call.func.value  # mock.patch(...).start()
        name = _callee(call)
        if name in ("setattr", *self.helpers) and len(call.args) >= 3:
            owner = self._owner(ctx, call.args[0])
            if not isinstance(owner, Found):
                return
            kind = "setattr" if name == "setattr" else f"helper:{name}"
            literal = call.args[1]
            if not (isinstance(literal, ast.Constant) and isinstance(literal.value, str)):
                written = f"{ast.unparse(call.args[0])}.<{ast.unparse(literal)}>"
                out.append(Site(ctx.file, call.lineno, kind, written, owner, "?", why="the attribute name is not a literal"))
                return
            written = f"{ast.unparse(call.args[0])}.{literal.value}"
            out += self._site(ctx, call.lineno, kind, written, owner, literal.value, call.args[2])
        elif name == "patch" and len(call.args) >= 2 and (path := self._string(ctx, call.args[0])) is not None:
            dotted, _, attr = path.rpartition(".")
            if self.resolver.inside(dotted):
                owner = self.resolver.resolve(dotted)
                if owner.kind in ("class", "module"):
                    out += self._site(ctx, call.lineno, "mock.patch", path, owner, attr, call.args[1])
                else:
                    out.append(Site(ctx.file, call.lineno, "mock.patch", path, why=f"{dotted} is not in {self.where}"))

    def _string(self, ctx: _Context, arg: ast.expr) -> str | None:
        """A string literal, or a name the function around (or the module) binds once to one."""
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
        if not isinstance(arg, ast.Name):
            return None
        scopes: list[ast.AST] = [*reversed(ctx.functions), ctx.file.tree]
        for scope in scopes:
            found = [n.value for n in ast.walk(scope) if isinstance(n, ast.Assign) and len(n.targets) == 1
                     and isinstance(n.targets[0], ast.Name) and n.targets[0].id == arg.id]
            if found:
                value = found[-1]  # the binding nearest before use is not tracked: the last one written
                return value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) else None
        return None

    # -- one site

    def _site(self, ctx: _Context, line: int, kind: str, written: str, owner: Found, attr: str, value: ast.expr) -> list[Site]:
        site = Site(ctx.file, line, kind, written, owner, attr)
        original = self._canonical(f"{owner.module}.{owner.qualname}.{attr}" if owner.qualname else f"{owner.module}.{attr}")
        decorators: list[str] = []
        while isinstance(value, ast.Call) and _callee(value) in ("staticmethod", "classmethod") and len(value.args) == 1:
            decorators.append(str(_callee(value)))
            value = value.args[0]
        found = self._definition(ctx, value)
        if isinstance(found, str):
            site.why = found
            site.wrapper = self._wraps(ctx, value, original)
            return [site]
        file, node, qualname = found
        if isinstance(node, ast.ClassDef):
            return self._swap(site, file, node, qualname)
        site.copy = Copy(file, node, qualname, _holder(qualname, file), tuple(decorators))
        site.wrapper = self._calls_original(site.copy, ctx, original, owner)
        return [site]

    def _swap(self, site: Site, file: PatchFile, node: ast.ClassDef, qualname: str) -> list[Site]:
        """`module.Cls = Sub`: each method Sub defines is a site on Cls."""
        owner = self.resolver.resolve(f"{site.owner.module}.{site.attr}") if site.owner and site.owner.kind == "module" else None
        if owner is None or owner.kind != "class":
            site.why = f"installs the class {qualname} over something that is not a vLLM class"
            return [site]
        subclass = any(self._is(file, base, owner) for base in node.bases)
        kind = "class-swap" if subclass else "class-replace"
        out = []
        for member in node.body:
            if not isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            method = Site(site.file, site.line, kind, f"{site.written}.{member.name}", owner, member.name)
            method.copy = Copy(file, member, f"{qualname}.{member.name}", qualname, (),
                               {qualname.rpartition(".")[2]: owner.qualname.rpartition(".")[2]} if subclass else {},
                               self._brought(node, owner))
            method.notes.append(f"a method of {qualname} (swapped in)")
            if subclass and _calls_super(member, member.name):
                method.wrapper = f"calls super().{member.name}(...), the original"
            out.append(method)
        return out or [Site(site.file, site.line, kind, site.written, owner, site.attr, why=f"{qualname} overrides no method")]

    def _patch_class(self, ctx: _Context, cls: ast.ClassDef, out: list[Site]) -> None:
        """`class P(ArcticPatch[Target])`: each member it applies is a site on Target (a def, a value, or
        `_orig_f = Target.f`: the original kept for the patch's wrappers)."""
        for base in cls.bases:
            patcher = _callee_name(base.value) if isinstance(base, ast.Subscript) else None
            if not isinstance(base, ast.Subscript) or patcher not in PATCH_CLASSES:
                continue
            owner = self._owner(ctx, base.slice)
            if not isinstance(owner, Found):
                return
            kind, written = f"patch-class[{patcher}]", ast.unparse(base.slice)
            saved = self._saved(ctx, cls, owner)
            qualname = cls.name if not ctx.functions else None
            for member in cls.body:
                name = _member_name(member)
                if name is None or (PATCH_CLASSES[patcher] == "public" and name.startswith("_")) or name in _ARCTIC_SKIPS:
                    continue
                site = Site(ctx.file, member.lineno, kind, f"{written}.{name}", owner, name)
                out.append(site)
                if name in saved:
                    site.original = saved[name]
                    site.wrapper = f"keeps the original {written}.{saved[name]} as {name} for the patch's wrappers"
                elif not isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                    site.why = f"sets a value ({ast.unparse(member)[:50]}), not a function"
                elif qualname is None:
                    site.why = "the patch class is defined inside a function"
                else:
                    site.copy = Copy(ctx.file, member, f"{qualname}.{name}", qualname, (), {cls.name: owner.qualname or cls.name},
                                     self._brought(cls, owner) - set(saved))
                    used = {n.attr for n in ast.walk(member) if isinstance(n, ast.Attribute)} & set(saved)
                    if used:
                        site.wrapper = f"calls the original saved as {', '.join(sorted(used))}"
            return

    def _saved(self, ctx: _Context, cls: ast.ClassDef, owner: Found) -> dict[str, str]:
        """Members bound to an attribute of the patch's own target (`_orig_f = Target.f`): name -> 'f'."""
        out = {}
        for member in cls.body:
            chain = attribute_chain(member.value) if isinstance(member, ast.Assign) and len(member.targets) == 1 else None
            dotted = self._dotted(ctx, chain) if chain and len(chain) > 1 else None
            name = _member_name(member)
            if dotted and name and self.resolver.resolve(dotted.rpartition(".")[0]).target == owner.target:
                out[name] = dotted.rpartition(".")[2]
        return out

    def _canonical(self, dotted: str) -> str:
        """A dotted name as the definition it names ('module:Qual.name'), so that re-exports compare equal."""
        found = self.resolver.resolve(dotted) if self.resolver.inside(dotted) else None
        return found.target if found is not None and found.defined else dotted

    def _means(self, ctx: _Context, chain: list[str]) -> str | None:
        dotted = self._dotted(ctx, chain)
        return None if dotted is None else self._canonical(dotted)

    def _brought(self, cls: ast.ClassDef, owner: Found) -> frozenset[str]:
        """Class attributes `cls` defines (not methods) that vLLM's class `owner` does not."""
        mine = {t.id for stmt in cls.body if isinstance(stmt, ast.Assign | ast.AnnAssign)
                for t in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]) if isinstance(t, ast.Name)}
        theirs = set(bindings.top_level(ast.Module(body=owner.node.body, type_ignores=[]), None)) \
            if isinstance(owner.node, ast.ClassDef) else set()
        return frozenset(mine - theirs)

    # -- names

    def _owner(self, ctx: _Context, expr: ast.expr) -> Found | str | None:
        """The vLLM class or module an expression names; its dotted name when it names vLLM but the
        release has no such class or module; None when it does not name vLLM."""
        chain = attribute_chain(expr)
        dotted = self._dotted(ctx, chain) if chain else None
        if dotted is None or not self.resolver.inside(dotted):
            return None
        found = self.resolver.resolve(dotted)
        if found.kind in ("class", "module"):
            return found
        return dotted if found.kind in ("missing", "external") else None

    def _dotted(self, ctx: _Context, chain: list[str], depth: int = 0) -> str | None:
        """The absolute dotted name a chain means where `ctx` is (imports, aliases, hook parameters)."""
        name, rest = chain[0], chain[1:]
        for fn in reversed(ctx.functions):
            hooked = _hooked_module(fn)
            if hooked and fn.args.args and fn.args.args[0].arg == name:
                return ".".join([hooked] + rest)
            local = self._locals(fn, ctx.file.package).get(name)
            if local is not None:
                return self._through(ctx, local, rest, depth)
        binding = ctx.file.binding(name)
        return None if binding is None else self._through(ctx, binding, rest, depth)

    def _through(self, ctx: _Context, binding: bindings.Binding, rest: list[str], depth: int) -> str | None:
        if binding.kind == "import" and binding.module:
            return ".".join([binding.module] + rest)
        if binding.kind == "from" and binding.module and binding.attr:
            return ".".join([binding.module, binding.attr] + rest)
        if binding.kind == "assign" and depth < 5:
            alias = _alias_chain(getattr(binding.node, "value", None))
            return self._dotted(ctx, alias + rest, depth + 1) if alias else None
        return None

    def _definition(self, ctx: _Context, value: ast.expr) -> tuple[PatchFile, Func | ast.ClassDef, str] | str:
        """The def or class a replacement expression names in the scanned files, or why there is none."""
        if isinstance(value, ast.Lambda):
            return "a lambda, not a def"
        if isinstance(value, ast.Constant | ast.List | ast.Tuple | ast.Dict | ast.Set):
            return f"sets a value ({ast.unparse(value)[:40]}), not a function"
        chain = attribute_chain(value)
        if chain is None:
            return f"installs {ast.unparse(value)[:60]} (not a def of the scanned files)"
        if len(chain) == 1:
            for fn in reversed(ctx.functions):  # a def nested in the function around the site
                if chain[0] in _nested_defs(fn):
                    return self._in_file(ctx.file, f"{_qualname(ctx.file, fn)}.<locals>.{chain[0]}")
        binding = ctx.file.binding(chain[0])
        if binding is not None and binding.kind == "assign" and not self._shadowed(ctx, chain[0]) and \
                attribute_chain(getattr(binding.node, "value", None)) is None:
            return f"sets the value {chain[0]} (line {binding.line}), not a function"
        if binding is not None and binding.kind in ("def", "class") and not self._shadowed(ctx, chain[0]):
            return self._in_file(ctx.file, ".".join(chain))
        dotted = self._dotted(ctx, chain)
        if dotted is None:
            return f"installs {'.'.join(chain)}, which is not defined or imported here"
        return self._scanned(dotted)

    def _locals(self, fn: Func, package: str | None) -> dict[str, bindings.Binding]:
        if id(fn) not in self._local:
            self._local[id(fn)] = _local_bindings(fn, package)
        return self._local[id(fn)]

    def _shadowed(self, ctx: _Context, name: str) -> bool:
        return any(name in self._locals(fn, ctx.file.package) for fn in ctx.functions)

    def _in_file(self, file: PatchFile, qualname: str) -> tuple[PatchFile, Func | ast.ClassDef, str] | str:
        scopes = [s for s in file.definitions(qualname) if isinstance(s.node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
        if len(scopes) != 1:
            return f"{qualname} is defined {len(scopes)} times in {file.path}" if scopes else f"{file.path} defines no {qualname}"
        node = scopes[0].node
        assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        return file, node, qualname

    def _module_file(self, module: str) -> PatchFile | None:
        """The scanned file of a module: by its name, else by a path ending in the module's folders
        (a namespace package, or a package scanned from below its root)."""
        if module in self.by_module:
            return self.by_module[module]
        tail = "/" + module.replace(".", "/")
        found = [f for path, f in self._by_path.items() if path.endswith(tail) or path.endswith(tail + "/__init__")]
        return found[0] if len(found) == 1 else None

    def _scanned(self, dotted: str) -> tuple[PatchFile, Func | ast.ClassDef, str] | str:
        """A dotted name in a scanned file: the longest module prefix that is one, then the qualname."""
        parts = dotted.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            file = self._module_file(".".join(parts[:cut]))
            if file is not None:
                name = ".".join(parts[cut:])
                binding = file.binding(parts[cut])
                if binding is not None and binding.kind in ("from", "import") and binding.module:
                    return self._scanned(".".join([binding.module] + ([binding.attr] if binding.kind == "from" and binding.attr
                                                                       else []) + parts[cut + 1:]))
                return self._in_file(file, name)
        if self.resolver.inside(dotted):
            return f"rebinds it to {dotted}, another vLLM object"
        return f"installs {dotted}, which is not in the scanned files"

    # -- wrappers

    def _wraps(self, ctx: _Context, value: ast.expr, original: str) -> str:
        """Evidence that a call or lambda installed as the replacement wraps the original."""
        aliases = self._aliases(ctx, original)
        for node in ast.walk(value):
            chain = attribute_chain(node) if isinstance(node, ast.Attribute | ast.Name) else None
            if chain and (chain[0] in aliases and len(chain) == 1 or self._means(ctx, chain) == original):
                return f"wraps the original ({ast.unparse(node)})"
        return ""

    def _calls_original(self, copy: Copy, ctx: _Context, original: str, owner: Found) -> str:
        """Evidence that a def installed as the replacement calls the original it replaces."""
        aliases = self._aliases(ctx, original) | self._aliases(_Context(copy.file, []), original)
        for node in ast.walk(copy.node):
            if isinstance(node, ast.Name) and node.id in aliases:
                return f"calls the original saved as {node.id}"
        for decorator in copy.node.decorator_list:
            if "wraps" in ast.unparse(decorator) and self._wraps(ctx, decorator, original):
                return f"is functools.wraps of the original ({ast.unparse(decorator)})"
        return ""

    def _aliases(self, ctx: _Context, original: str) -> set[str]:
        """Names bound (at module level or in the functions around) to the original: `orig = Target.f`."""
        found = set()
        statements = list(ctx.file.tree.body) + [s for fn in ctx.functions for s in ast.walk(fn) if isinstance(s, ast.stmt)]
        for stmt in statements:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                chain = _alias_chain(stmt.value)
                if chain and self._means(ctx, chain) == original:
                    found.add(stmt.targets[0].id)
        return found

    def _is(self, file: PatchFile, base: ast.expr, owner: Found) -> bool:
        chain = attribute_chain(base.value if isinstance(base, ast.Subscript) else base)
        dotted = self._dotted(_Context(file, []), chain) if chain else None
        return dotted is not None and self.resolver.resolve(dotted).target == owner.target


def name_modules(files: list[PatchFile]) -> None:
    """Give files in namespace packages (no `__init__.py` above them) the module name the other files
    import them by: `ucm/integration/x.py` is `ucm.integration.x` when some file imports that."""
    imported = {n.module for f in files for n in ast.walk(f.tree) if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module}
    imported |= {a.name for f in files for n in ast.walk(f.tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {f"{m}.{a.name}" for f in files for n in ast.walk(f.tree) if isinstance(n, ast.ImportFrom) and n.level == 0
                 and (m := n.module) for a in n.names}
    for file in files:
        path = file.path.absolute().with_suffix("").as_posix()
        path = path[: -len("/__init__")] if path.endswith("/__init__") else path
        best = max((m for m in imported if path.endswith("/" + m.replace(".", "/")) and len(m) > len(file.module or "")),
                   key=len, default=None)
        if best is not None:
            file.rename(best)


def _alias_chain(value: ast.expr | None) -> list[str] | None:
    """What an alias names: `a.b` -> ['a', 'b']; `getattr(mod, "Cls", None)` -> ['mod', 'Cls'] (vllm-gaudi's
    guarded patches)."""
    if isinstance(value, ast.Call) and _callee(value) == "getattr" and len(value.args) >= 2 \
            and isinstance(value.args[1], ast.Constant) and isinstance(value.args[1].value, str):
        chain = attribute_chain(value.args[0])
        return chain + [value.args[1].value] if chain else None
    return attribute_chain(value)


def _member_name(member: ast.stmt) -> str | None:
    """The name a class-body statement binds: a def, a class, `name = ...` or `name: T = ...`."""
    if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return member.name
    if isinstance(member, ast.Assign) and len(member.targets) == 1 and isinstance(member.targets[0], ast.Name):
        return member.targets[0].id
    if isinstance(member, ast.AnnAssign) and isinstance(member.target, ast.Name):
        return member.target.id
    return None


def _nested_defs(fn: Func) -> set[str]:
    """Names of the defs and classes a function defines in its own blocks (not inside nested defs)."""
    found: set[str] = set()
    stack: list[ast.stmt] = list(fn.body)
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.add(stmt.name)
            continue
        for block in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, block, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                stack += inner
        for handler in getattr(stmt, "handlers", []):
            stack += handler.body
    return found


def _callee(call: ast.Call) -> str | None:
    return _callee_name(call.func)


def _callee_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _holder(qualname: str, file: PatchFile) -> str | None:
    holder = qualname.rpartition(".")[0]
    return holder if holder and any(s.kind == "class" for s in file.definitions(holder)) else None


def _qualname(file: PatchFile, fn: Func) -> str:
    found = [s.qualname for s in file.index.scopes if s.node is fn]
    return found[0] if found else fn.name


def _calls_super(fn: Func, name: str) -> bool:
    """Whether a method calls `super().name(...)` (in a subclass swapped in: the original)."""
    for node in ast.walk(fn):
        if isinstance(node, ast.Attribute) and node.attr == name and isinstance(node.value, ast.Call) and \
                _callee(node.value) == "super":
            return True
    return False


def _hooked_module(fn: Func) -> str | None:
    """`@when_imported("vllm.x")` (UCM's post-import hooks): the module the hook's parameter is."""
    for decorator in fn.decorator_list:
        if isinstance(decorator, ast.Call) and decorator.args and isinstance(decorator.args[0], ast.Constant) and \
                isinstance(decorator.args[0].value, str) and "import" in (_callee(decorator) or ""):
            return decorator.args[0].value
    return None


def _local_bindings(fn: Func, package: str | None) -> dict[str, bindings.Binding]:
    """Names a function binds by its own statements (imports inside it, aliases), nested defs aside."""
    found: dict[str, bindings.Binding] = {}
    stack: list[ast.stmt] = list(fn.body)
    while stack:
        stmt = stack.pop(0)
        for binding in bindings.statement_bindings(stmt, package):
            found.setdefault(binding.name, binding)
        if not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for block in ("body", "orelse", "finalbody"):
                inner = getattr(stmt, block, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                    stack += inner
    return found
