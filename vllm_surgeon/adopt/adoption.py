"""One copy adopted: a replacement def read from a patch file, against its target in a release.

The result is a verdict and, when there is something to write, the edits on vLLM's module that
make the target the replacement's code: its changed statements in upstream's layout (relayout),
import lines and carried globals for the names it reads (meaning), or a whole method added to a
class when the target has no upstream definition. Nothing is written here: `assemble` renders the
edits as hunks and checks them with the engine.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from vllm_surgeon.adopt import code, meaning, names
from vllm_surgeon.adopt.patchfile import PatchFile
from vllm_surgeon.adopt.relayout import Edit, Relayout, Text, Unclean, apply_edits, indent_of, reindent, span
from vllm_surgeon.adopt.resolve import Found, Resolver, attribute_chain
from vllm_surgeon.core.codedigest import code_of
from vllm_surgeon.core.model import Target
from vllm_surgeon.core.scopes import Scope, ScopeIndex
from vllm_surgeon.core.source import ModuleSource

Func = ast.FunctionDef | ast.AsyncFunctionDef
ADOPTED, IDENTICAL, NEW, REFUSED, WRAPPER = "adopted", "identical", "new", "refused", "wrapper"


@dataclass
class Copy:
    """The replacement: a def in a patch file, and what the site that installs it says about it."""

    file: PatchFile
    node: Func
    qualname: str
    holder: str | None = None  # the class it sits in, in the patch file
    site_decorators: tuple[str, ...] = ()  # `Target.f = staticmethod(f)`: what the site makes of it
    stands_for: dict[str, str] = field(default_factory=dict)  # patch-file class names meaning a vLLM class
    # Class attributes the class holding the copy brings (a swapped-in subclass, a patch class) that
    # vLLM's class lacks: `self.X` of one of them would not be there once the copy is adopted.
    class_attrs: frozenset[str] = frozenset()

    @classmethod
    def named(cls, file: PatchFile, qualname: str) -> Copy:
        node, scope = file.function(qualname)
        holder = file.holder(scope)
        return cls(file, node, qualname, holder.qualname if holder else None)

    @property
    def label(self) -> str:
        return f"{self.file.path}::{self.qualname}"


@dataclass
class ModuleChange:
    """Edits on one vLLM module, from one adoption or several (discovery's `--out`)."""

    source: ModuleSource
    text: Text
    edits: list[Edit] = field(default_factory=list)
    imports: set[meaning.ImportLine] = field(default_factory=set)
    added: dict[str, list[str]] = field(default_factory=dict)  # 'Class.method' -> its lines, added at the class's end
    expect: dict[str, str] = field(default_factory=dict)  # qualname -> the key of the code the patched module must hold
    import_at: int = 0
    defined: dict[str, list[str]] = field(default_factory=dict)  # globals carried in after the imports: name -> lines
    index: ScopeIndex | None = None  # the module's scopes, when already parsed
    defined_at: dict[str, int] = field(default_factory=dict)  # those of `defined` that go further down: name -> line after

    @property
    def module(self) -> str:
        return self.source.module

    def lines(self) -> list[str]:
        """The module's lines with the edits made and the methods added."""
        return apply_edits(self.text.lines, self.all_edits())

    def all_edits(self, with_added: bool | set[str] = True) -> list[Edit]:
        """The edits, the import lines and carried globals, and the added methods (all, none, or those
        named in `with_added`)."""
        edits = list(self.edits)
        head = meaning.render_imports(self.imports) if self.imports else []
        plain = False  # constants sit together; a def gets two blank lines around it, as PEP 8 has it
        later: dict[int, list[str]] = {}
        for name, lines in self.defined.items():
            is_def = lines[0].startswith(("def ", "class ", "@", "async "))
            if name in self.defined_at:  # after the statement binding what it reads as it is defined
                later.setdefault(self.defined_at[name], []).extend(["", ""] + lines)
                continue
            head += (["", ""] if is_def else [] if plain else [""]) + lines
            plain = not is_def
        if head:
            edits.append(Edit(self.import_at, self.import_at, head, -1))
        edits += [Edit(at, at, lines, -1) for at, lines in later.items()]
        if with_added and self.added:
            if self.index is None:
                self.index = ScopeIndex(self.source.text, self.source.path)
            index = self.index
            for qualname, lines in self.added.items():
                if with_added is not True and qualname not in with_added:
                    continue
                holder = index.find(qualname.rpartition(".")[0])[0]
                edits.append(Edit(holder.end, holder.end, [""] + lines, 10**6 + len(edits)))
        return edits

    def merge(self, other: ModuleChange) -> str | None:
        """Take `other`'s edits into this change; the reason when they clash (both change one statement)."""
        for qualname, key in other.expect.items():
            if self.expect.get(qualname, key) != key:
                return f"another site makes {self.module}:{qualname} other code"
        for edit in other.edits:
            if any((e.start, e.end, e.lines) == (edit.start, edit.end, edit.lines) for e in self.edits):
                continue
            if any(e.start < edit.end and edit.start < e.end or e.start == edit.start for e in self.edits):
                return f"another site changes the same lines of {self.module} (line {edit.start + 1})"
        bound = {line.binds: line for line in self.imports}
        for line in other.imports:
            if line.binds in bound and bound[line.binds] != line:
                return f"another site imports {line.binds} from elsewhere"
        self.edits += [e for e in other.edits if not any((e.start, e.end, e.lines) == (x.start, x.end, x.lines) for x in self.edits)]
        for name, lines in other.defined.items():
            if self.defined.get(name, lines) != lines:
                return f"another site carries another {name} into {self.module}"
        self.imports |= other.imports
        self.defined.update(other.defined)
        self.defined_at.update(other.defined_at)
        self.added.update(other.added)
        self.expect.update(other.expect)
        return None


@dataclass
class Adoption:
    """The verdict on one copy, and the change that adopts it (None: nothing to write)."""

    copy: str
    target: str
    verdict: str
    reason: str = ""
    change: ModuleChange | None = None
    digest: str | None = None  # the upstream function's code digest (what a guard record keeps)
    notes: list[str] = field(default_factory=list)
    override: Found | None = None  # the base class's def the target inherits (the copy is added as an override)


@dataclass
class Upstream:
    source: ModuleSource
    qualname: str
    node: Func
    scope: Scope
    in_class: bool


def adopt(copy: Copy, target: Target, resolver: Resolver, where: str) -> Adoption:
    """The verdict on `copy` replacing `target` in the tree `resolver` reads (`where`: its label)."""
    found = find_upstream(target, resolver, where)
    if isinstance(found, Adoption):
        found.copy = copy.label
        if found.verdict == NEW:
            return _added(copy, found, resolver)
        return found
    up = found
    label = f"{up.source.module}:{up.qualname}"
    result = Adoption(copy.label, label, REFUSED, digest=digest_of(resolver, up.source.module, up.qualname))
    wanted = _decorators(copy, up)
    if isinstance(wanted, str):
        result.reason = wanted
        return result
    brought = _class_attributes_read(copy)
    if brought:
        result.reason = (f"reads {', '.join(sorted(brought))}, class attribute(s) of {copy.holder} that "
                         f"{up.source.module}:{up.qualname.rpartition('.')[0]} lacks")
        return result
    key = code.function_key(copy.node, [node for _, node in wanted])
    holder = f"{up.source.module}:{up.qualname.rpartition('.')[0]}" if up.in_class else None
    need = _needs(copy, up.source.module, resolver, result, holder)
    if need is None:
        return result
    same = code.function_key(up.node) == key
    if same and not need.carried and not need.imports:
        result.verdict = IDENTICAL
        result.reason = "the copy is upstream's code (layout, comments and docstrings aside)"
        return result
    change = _change(resolver, up.source.module)
    change.imports = set(need.imports)
    why = _edit(change, copy, up, wanted, key, same) or _carry(change, copy.file, need.carried)
    if why:
        result.reason = why
        return result
    result.verdict, result.change, result.notes = ADOPTED, change, need.notes
    if same:
        result.reason = "the copy is upstream's code; the globals it reads differ: " + ", ".join(c.name for c in need.carried)
    return result


def find_upstream(target: Target, resolver: Resolver, where: str) -> Upstream | Adoption:
    """The one upstream def of `target` (followed through re-exports), or a verdict saying why not."""
    module, qualname = target.module, target.qualname or ""
    refused = Adoption("", str(target), REFUSED)
    source, index = resolver.source(module), resolver.index(module)
    if source is None or index is None:
        refused.reason = f"no module {module} in {where}" if source is None else f"{module} does not parse in {where}"
        return refused
    scopes = index.find(qualname)
    if not scopes:
        found = resolver.resolve_in(module, qualname.split("."))
        inherited = [n for n in found.notes if n.startswith("inherited")]
        if found.kind == "function" and inherited:
            # Assigning to Sub.m changes Sub (and its subclasses), not the base that defines m: the copy
            # becomes an override added to Sub (a hunk in the base would change every class inheriting it).
            owner = resolver.resolve_in(module, qualname.split(".")[:-1])
            return Adoption("", f"{owner.target}.{qualname.rpartition('.')[2]}", NEW, override=found)
        elif found.kind == "function" and found.target != str(target):
            return find_upstream(Target(found.module, found.qualname), resolver, where)
        elif found.kind == "missing" and "." in qualname and resolver.resolve_in(module, qualname.split(".")[:-1]).kind == "class":
            owner = resolver.resolve_in(module, qualname.split(".")[:-1])
            return Adoption("", f"{owner.target}.{qualname.rpartition('.')[2]}", NEW)
        elif found.kind == "missing":
            refused.reason = f"{module} in {where} has no {qualname}{index.similar(qualname)}"
        else:
            refused.reason = f"{target} is a {found.kind} in {where}, not a function"
        return refused
    if len(scopes) > 1:
        refused.reason = f"{target} is defined {len(scopes)} times in {where} (a property's getter and setter?); adopt takes one def"
        return refused
    scope = scopes[0]
    if not isinstance(scope.node, ast.FunctionDef | ast.AsyncFunctionDef):
        refused.reason = f"{target} is a class in {where}; adopt takes a function (Class.method)"
        return refused
    holder = qualname.rpartition(".")[0]
    in_class = bool(holder) and any(s.kind == "class" for s in index.find(holder))
    return Upstream(source, qualname, scope.node, scope, in_class)


def _class_attributes_read(copy: Copy) -> set[str]:
    """`self.X` / `cls.X` the copy reads where X is one of the class attributes its class brings."""
    if not copy.class_attrs:
        return set()
    args = copy.node.args.posonlyargs + copy.node.args.args
    first = args[0].arg if args else None
    return {n.attr for n in ast.walk(copy.node) if isinstance(n, ast.Attribute) and n.attr in copy.class_attrs
            and isinstance(n.value, ast.Name) and n.value.id in {first, *copy.stands_for}}


def upstream_digest(target: Target, resolver: Resolver, where: str) -> str | None:
    """The guard records' digest (core/codedigest.py: code, not layout) of `target`'s upstream definition
    in the tree `resolver` reads, followed through re-exports; None when there is none. What a record of
    a monkey patch that stays (a wrapper) keeps of the function it depends on."""
    found = find_upstream(target, resolver, where)
    return None if isinstance(found, Adoption) else digest_of(resolver, found.source.module, found.qualname)


def digest_of(resolver: Resolver, module: str, qualname: str) -> str | None:
    """`vllm-surgeon guard`'s digest of `module:qualname` as the tree has it (every definition of the name)."""
    source, index = resolver.source(module), resolver.index(module)
    found = code_of(index, source.lines(), qualname) if source is not None and index is not None else None
    return None if found is None else found.digest


def _subclass_of(copy: Copy, holder: str, resolver: Resolver) -> bool:
    """Whether the class the copy sits in derives from vLLM's class `holder` ('module:Class')."""
    if copy.holder is None:
        return False
    classes = [s.node for s in copy.file.index.find(copy.holder) if isinstance(s.node, ast.ClassDef)]
    for base in classes[0].bases if classes else []:
        chain = attribute_chain(base.value if isinstance(base, ast.Subscript) else base)
        dotted = copy.file.dotted(chain) if chain else None
        if dotted is not None and resolver.resolve(dotted).target == holder:
            return True
    return False


def _decorators(copy: Copy, up: Upstream) -> list[tuple[str, ast.expr]] | str:
    """The decorators the adopted def must have: the copy's, with upstream's descriptors where the copy
    is a plain function assigned over a method (the site, not the def, says what kind of method it is)."""
    own = list(copy.node.decorator_list)
    if copy.holder is not None and not up.in_class:
        own = [d for d in own if not code.is_descriptor(d)]
    wanted: list[tuple[str, ast.expr]] = [("rep", d) for d in own]
    if copy.holder is None and up.in_class:
        kept = [d for d in up.node.decorator_list if code.is_descriptor(d) and all(code.dump(d) != code.dump(x) for x in own)]
        wanted = [("up", d) for d in kept] + wanted
    for name in copy.site_decorators:
        if not any(code.decorator_name(node) == name for _, node in wanted):
            return f"the site installs it as {name}(...), and {up.source.module}:{up.qualname} is no {name}"
    unused = list(up.node.decorator_list)
    out = []
    for side, node in wanted:  # a decorator equal to one of upstream's keeps upstream's text
        twin = next((d for d in unused if code.dump(d) == code.dump(node)), None)
        if twin is not None:
            unused.remove(twin)
            side, node = "up", twin
        out.append((side, node))
    return out


def _needs(copy: Copy, module: str, resolver: Resolver, result: Adoption, holder: str | None = None) -> meaning.Needs | None:
    """What the names the copy reads need in `module` (None: a refusal, written into `result`).

    holder: the vLLM class the copy becomes a method of. A zero-argument `super()` in the copy means
    that class's base once adopted; in a subclass of that class (a class swap) it meant the class
    itself, so there it is refused."""
    reads = names.function_reads(copy.file.text, str(copy.file.path), copy.node)
    if "__class__" in reads.closure:
        if holder is not None and _subclass_of(copy, holder, resolver):
            result.reason = (f"calls super() in {copy.holder}, a subclass of {holder}: there super() is vLLM's own "
                             f"{holder.rpartition(':')[2]}, which a hunk inside it cannot call")
            return None
        reads.closure.discard("__class__")
    if reads.closure:
        result.reason = f"reads {', '.join(sorted(reads.closure))} from the function around it (a closure); it stays a monkey patch"
        return None
    stands = dict(copy.stands_for)
    if copy.holder is not None:
        stands.setdefault(copy.holder.rpartition(".")[2], copy.holder.rpartition(".")[2])
    need = meaning.needs(copy.file, reads.globals, module, resolver, stands, copy.node)
    if need.refusal is not None:
        result.reason = need.refusal
        return None
    return need


def _edit(change: ModuleChange, copy: Copy, up: Upstream, wanted, key: str, same: bool) -> str | None:
    """The target's edits into `change`; the reason when its code cannot be laid out in upstream's text."""
    change.expect[up.qualname] = key
    if same:
        return None
    for whole in (False, True):
        layout = Relayout(change.text, copy.file.layout)
        try:
            edits = layout.function(up.node, copy.node, wanted, up.node.name, whole=whole)
        except Unclean as exc:
            reason = f"its code cannot be laid out in upstream's text ({exc})"
            continue
        trial = apply_edits(change.text.lines, edits)
        if _holds(trial, up, edits, key):
            change.edits += edits
            return None
        reason = "laid out in upstream's text it does not parse as the same code"
    return reason


def _holds(lines: list[str], up: Upstream, edits: list[Edit], key: str) -> bool:
    """Whether the function, as `edits` leave it in `lines`, parses as the code `key` says (only its
    own text is parsed: inside an `if True:` when it is indented)."""
    first, end = up.scope.start, up.scope.end
    inside = [e for e in edits if first <= e.start and e.end <= end]
    if len(inside) != len(edits):
        return False
    end += sum(len(e.lines) - (e.end - e.start) for e in inside)
    text = "\n".join(lines[first:end])
    indented = text[:1] in (" ", "\t")
    try:
        tree = ast.parse("if True:\n" + text if indented else text)
    except SyntaxError:
        return False
    body = tree.body[0].body if indented and isinstance(tree.body[0], ast.If) else tree.body
    return len(body) == 1 and isinstance(body[0], ast.FunctionDef | ast.AsyncFunctionDef) and code.function_key(body[0]) == key


def _carry(change: ModuleChange, file: PatchFile, carried: list[meaning.Carried]) -> str | None:
    """Each redefined global's statement from the patch file in place of vLLM's (a def: by relayout)."""
    for item in carried:
        layout = Relayout(change.text, file.layout)
        theirs = item.patch.node
        if item.mode == "add" or item.upstream is None:
            first, end = span(theirs)
            try:
                change.defined[item.name] = reindent(file.layout, first, end, indent_of(file.layout.lines[first]), "")
            except Unclean as exc:
                return f"the global {item.name} it reads cannot be carried into {change.module} ({exc})"
            if item.at is not None:
                change.defined_at[item.name] = item.at
            continue
        ours = item.upstream.node
        try:
            if isinstance(theirs, ast.FunctionDef | ast.AsyncFunctionDef) and isinstance(ours, ast.FunctionDef | ast.AsyncFunctionDef):
                edits = layout.function(ours, theirs, [("rep", d) for d in theirs.decorator_list], ours.name)
            else:
                layout.swap([ours], [theirs])
                edits = layout.edits
        except Unclean as exc:
            return f"the global {item.name} it reads cannot be carried into {change.module} ({exc})"
        change.edits += edits
        if isinstance(theirs, ast.FunctionDef | ast.AsyncFunctionDef):
            change.expect[item.name] = code.function_key(theirs)
    return None


def _change(resolver: Resolver, module: str) -> ModuleChange:
    """An empty change of `module`, on the text and scopes the resolver read once."""
    source, index = resolver.source(module), resolver.index(module)
    assert source is not None and index is not None
    return ModuleChange(source, resolver.layout(module), index=index, import_at=meaning.import_block_end(index.tree))


def _added(copy: Copy, new: Adoption, resolver: Resolver) -> Adoption:
    """A method the target class does not define: added at its end where it is plain code (for a method
    it inherits, as an override), else it stays (a new one) or is refused (an override)."""
    module, _, qualname = new.target.partition(":")
    holder_name, _, name = qualname.rpartition(".")
    new.digest = None
    need = _needs(copy, module, resolver, new, f"{module}:{holder_name}")
    why = None if need is not None else new.reason
    redefined = [c.name for c in need.carried if c.upstream is not None] if need is not None else []
    if redefined:  # helpers and constants vLLM lacks are added with the method; a redefinition is not
        why = f"reads globals the patch file redefines ({', '.join(redefined)})"
    if need is None or why is not None:
        if new.override is not None:
            new.verdict, new.reason = REFUSED, str(why)
        else:
            new.reason = f"{new.target} is not in vLLM and {why}; it stays a monkey patch"
        return new
    change = _change(resolver, module)
    change.imports = set(need.imports)
    carried = _carry(change, copy.file, need.carried)
    if carried:
        new.verdict = REFUSED if new.override is not None else NEW
        new.reason = carried + ("" if new.override else "; it stays a monkey patch")
        return new
    assert change.index is not None
    holder = change.index.find(holder_name)[0]
    text = change.text
    body = getattr(holder.node, "body", [])
    indent = indent_of(text.lines[body[0].lineno - 1]) if body else "    "
    first, end = span(copy.node)
    try:
        lines = reindent(copy.file.layout, first, end, indent_of(copy.file.layout.lines[first]), indent)
    except Unclean as exc:
        new.verdict = REFUSED if new.override is not None else NEW
        new.reason = f"the copy's text cannot be moved into {holder_name} ({exc})" + ("" if new.override else "; it stays a monkey patch")
        return new
    def_at = copy.node.lineno - 1 - first
    lines[def_at] = lines[def_at].replace(f"def {copy.node.name}", f"def {name}", 1)
    own = {code.decorator_name(d) for d in copy.node.decorator_list}
    site = [n for n in copy.site_decorators if n not in own]
    lines = [f"{indent}@{n}" for n in site] + lines
    decorators = [ast.Name(id=n, ctx=ast.Load()) for n in site] + list(copy.node.decorator_list)
    key = code.function_key(copy.node, decorators)
    base = new.override
    if base is not None and isinstance(base.node, ast.FunctionDef | ast.AsyncFunctionDef):
        new.digest = digest_of(resolver, base.module, base.qualname)
        if code.function_key(base.node) == key and not need.imports and not need.carried:
            new.verdict, new.reason = IDENTICAL, f"the copy is {base.target}, which {holder_name} inherits"
            return new
        new.verdict = ADOPTED
        new.reason = (f"{holder_name} inherits {name} from {base.target}: the copy is added to {holder_name} "
                      "as an override (a hunk in the base would change every class inheriting it)")
    else:
        new.reason = f"{new.target} is not in vLLM: added to {holder_name} as plain code"
    change.added[qualname] = lines
    change.expect[qualname] = key
    new.change = change
    return new
