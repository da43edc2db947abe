"""The handler: its path in the bundle and the check that it is defined there, parsed and never run.

Decisions where the contract is silent: the last module-level definition of
the name decides (module level includes the bodies of top-level
``if``/``try``/``with``/``for``/``while``). It must be a plain ``def`` with
exactly two positional parameters (positional only or regular; defaults
allowed). ``*args``/``**kwargs`` in addition to the two are allowed (the call
``handler(event, context)`` still works); a required keyword-only parameter
is rejected (the runtime never passes it). ``def handler(event, context,
extra=None)`` is rejected: three positional parameters, as in the reference
simulator. Decorators are not looked through. The file is parsed with
``ast``, never imported.
"""

from __future__ import annotations

import ast
import re
from typing import Iterator

from runtime.sandbox.contract import HANDLER_PATTERN as HANDLER_RE
from storage.sizes import format_bytes

from .archive import Limits, Member, effective_limits, open_zip, read_whole, scan
from .errors import BundleError

MAX_HANDLER_LENGTH = 255


def handler_path(handler: str) -> tuple[str, str]:
    """``"a.b.main"`` -> ``("a/b.py", "main")``; dots and slashes before the last dot name the file."""
    if not isinstance(handler, str) or not handler:
        raise BundleError(
            "Handler is required: use path/to/module.function, e.g. 'function.main' for "
            "def main(event, context) in function.py.",
            "handler",
        )
    if len(handler) > MAX_HANDLER_LENGTH:
        raise BundleError(f"Handler is {len(handler)} characters long; the limit is {MAX_HANDLER_LENGTH}.", "handler")
    if not HANDLER_RE.fullmatch(handler):
        raise BundleError(
            f"Handler {handler!r} is not valid: use path/to/module.function (letters, digits, "
            "'_', '-', '.' and '/'), e.g. 'function.main' for def main(event, context) in function.py.",
            "handler",
        )
    module, _, function = handler.rpartition(".")
    parts = re.split(r"[./]", module)
    if any(part in ("", "..") for part in parts):
        raise BundleError(
            f"Handler {handler!r} has an empty path segment (a leading '/', '//' or '..'): name the "
            "file relative to the bundle root, e.g. 'src/app.main' for src/app.py.",
            "handler",
        )
    return "/".join(parts) + ".py", function


def validate_handler(fileobj, handler: str, *, limits: Limits | None = None) -> None:
    """The handler's file exists in the bundle and defines ``def NAME(event, context)`` (parsed, never run)."""
    limits = effective_limits(limits)
    path, function = handler_path(handler)
    try:
        zf, _ = open_zip(fileobj, limits)
        with zf:
            members = scan(zf, limits)
            files = {m.path: m for m in members if not m.is_dir}
            member = files.get(path)
            if member is None:
                raise BundleError(_missing_file_message(handler, path, files), "handler")

            def too_big() -> BundleError:
                return BundleError(
                    f"{path} is larger than {format_bytes(limits.max_handler_source_bytes)}; put the handler "
                    "in a smaller module.",
                    "handler",
                )

            source = read_whole(zf, member, limits.max_handler_source_bytes, too_big)
    finally:
        fileobj.seek(0)
    check_handler_source(source, path, function)


def _missing_file_message(handler: str, path: str, files: dict[str, Member]) -> str:
    message = f"Handler {handler!r} needs the file {path} at the root of the zip, but the zip has no such file."
    nested = sorted(p for p in files if p.endswith("/" + path))
    if nested:
        folder = nested[0][: -len(path) - 1]
        return (
            f"{message} It has {nested[0]}: zip the contents of the {folder!r} folder rather than the folder "
            f"itself, or set the handler to {folder}/{path[:-3]}.{handler.rpartition('.')[2]!s}."
        )
    same = [p for p in files if p.lower() == path.lower()]
    if same:
        return f"{message} Did you mean {same[0]}? Names are case-sensitive."
    return message + " Check the handler's spelling, or add the file to the zip."


_MODULE_BLOCKS = (ast.If, ast.For, ast.While, ast.Try, ast.TryStar, ast.With)


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for node in body:
        yield node
        if isinstance(node, _MODULE_BLOCKS):
            for attr in ("body", "orelse", "finalbody"):
                yield from _module_level(getattr(node, attr, []))
            for handler in getattr(node, "handlers", []):
                yield from _module_level(handler.body)
        elif isinstance(node, ast.Match):
            for case in node.cases:
                yield from _module_level(case.body)


def _names_bound(target: ast.expr) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            yield from _names_bound(elt.value if isinstance(elt, ast.Starred) else elt)


def _binding(node: ast.stmt, name: str) -> str | None:
    """How ``node`` binds ``name`` at module level, if it does."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        if node.name != name:
            return None
        return {ast.FunctionDef: "def", ast.AsyncFunctionDef: "async", ast.ClassDef: "class"}[type(node)]
    if isinstance(node, ast.Assign):
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id == name:
                return "lambda" if isinstance(node.value, ast.Lambda) else "assign"
            if name in _names_bound(target):
                return "assign"
    if isinstance(node, ast.AnnAssign) and node.value is not None and isinstance(node.target, ast.Name):
        if node.target.id == name:
            return "lambda" if isinstance(node.value, ast.Lambda) else "assign"
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
        return "assign"
    if isinstance(node, ast.Import):
        if any((alias.asname or alias.name.split(".")[0]) == name for alias in node.names):
            return "import"
    if isinstance(node, ast.ImportFrom):
        if any((alias.asname or alias.name) == name for alias in node.names):
            return "import"
    return None


def check_handler_source(source: bytes | str, filename: str, function: str) -> None:
    """The checks of ``validate_handler`` on one file's source (for callers that already have it)."""
    try:
        tree = ast.parse(source, filename=filename, feature_version=(3, 12))
    except SyntaxError as exc:
        where = f"{filename} line {exc.lineno}" if exc.lineno else filename
        raise BundleError(f"{where}: {exc.msg}", "handler") from exc
    except (ValueError, RecursionError, MemoryError) as exc:
        raise BundleError(f"{filename} cannot be parsed as Python: {exc}", "handler") from exc

    definitions: list[tuple[str, ast.stmt]] = []
    others: list[tuple[str, ast.stmt]] = []
    for node in _module_level(tree.body):
        kind = _binding(node, function)
        if kind in ("def", "async", "class", "lambda"):
            definitions.append((kind, node))
        elif kind:
            others.append((kind, node))

    wanted = f"def {function}(event, context):"
    if not definitions:
        if others:
            kind, node = others[-1]
            how = "imported" if kind == "import" else "assigned"
            raise BundleError(
                f"{filename} line {node.lineno}: {function!r} is {how} there, not defined with def. "
                f"Define `{wanted}` in {filename} (it can call the other function).",
                "handler",
            )
        raise BundleError(_missing_function_message(tree, filename, function), "handler")

    kind, node = definitions[-1]
    where = f"{filename} line {node.lineno}"
    if kind == "async":
        raise BundleError(
            f"{where}: {function!r} is an async def; the runtime calls the handler synchronously, "
            f"so define it as a plain `{wanted}`.",
            "handler",
        )
    if kind == "class":
        raise BundleError(f"{where}: {function!r} is a class; the handler must be a function: `{wanted}`.", "handler")
    if kind == "lambda":
        raise BundleError(f"{where}: {function!r} is a lambda; define it with `{wanted}`.", "handler")

    args = node.args
    positional = [a.arg for a in args.posonlyargs + args.args]
    if len(positional) != 2:
        names = f" ({', '.join(positional)})" if positional else ""
        count = {0: "no positional parameters", 1: "1 positional parameter"}.get(
            len(positional), f"{len(positional)} positional parameters"
        )
        raise BundleError(
            f"{where}: {function!r} takes {count}{names}; the handler must take exactly two, "
            f"event and context: `{wanted}`.",
            "handler",
        )
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        if default is None:
            raise BundleError(
                f"{where}: {function!r} has a required keyword-only parameter {arg.arg!r}, which the runtime "
                "never passes. Give it a default or remove it.",
                "handler",
            )


def _missing_function_message(tree: ast.Module, filename: str, function: str) -> str:
    message = f"{filename} has no top-level function named {function!r}. Define `def {function}(event, context):` in it"
    for container in ast.walk(tree):
        if isinstance(container, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            for child in container.body:
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and child.name == function:
                    what = "class" if isinstance(container, ast.ClassDef) else "function"
                    return (
                        f"{message}: the one at line {child.lineno} is inside {what} {container.name!r}, "
                        "and the handler must be at the top level of the file."
                    )
    top = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    if top:
        shown = ", ".join(top[:10]) + (", ..." if len(top) > 10 else "")
        return f"{message}, or fix the handler (functions in the file: {shown})."
    return f"{message}, or fix the handler."
