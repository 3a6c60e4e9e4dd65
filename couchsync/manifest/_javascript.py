"""The JavaScript of design docs, checked when manifests load, with QuickJS.

CouchDB 3.5 runs design-doc functions in QuickJS: a view that does not compile makes it
refuse the design doc, and other functions (``validate_doc_update``, shows, filters...)
are stored and fail when first run. Both are caught here, in the same engine, before
anything is sent. A source is evaluated as CouchDB does, as one expression that must be
a function (a named ``function map(doc) {...}`` is a declaration, with no value).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

#: CouchDB's built-in reduces (couch_mrview:validate, 3.5): a reduce starting with "_"
#: must be one of these, or _top_N / _bottom_N with N from 1 to 100.
BUILTIN_REDUCES = frozenset({"_count", "_sum", "_stats", "_approx_count_distinct",
                             "_first", "_last"})
_RANKED = re.compile(r"_(top|bottom)_([1-9][0-9]?|100)\Z")
#: Names CouchDB's sandbox defines, stubbed so that code run at evaluation finds them.
_SANDBOX = ("emit", "sum", "log", "toJSON", "isArray", "send", "getRow", "start",
            "provides", "registerType", "index", "require")
_SECONDS = 1
_ANONYMOUS = re.compile(r"\bfunction(\s*\()")
#: A source starting (after blanks and comments) with a named or async function: a
#: declaration to CouchDB, with no value.
_DECLARATION = re.compile(r"(?:\s|//[^\n]*|/\*.*?\*/)*(?:async\s+function|function\s*\*?\s*[\w$])",
                          re.DOTALL)
_AT_LINE = re.compile(r"<input>:(\d+)")

Path = tuple[str, ...]


def javascript_problems(body: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    """``(path in the design doc, message)`` for each function of ``body`` that CouchDB
    would not compile, and each reduce that is neither a built-in nor JavaScript that
    compiles; nothing for a design doc in another language."""
    if body.get("language", "javascript") != "javascript":
        return
    for path, source, kind in _functions(body):
        message = (_reduce_problem(source) if kind == "reduce" and source.startswith("_")
                   else _module_problem(source) if kind == "module"
                   else _function_problem(source))
        if message is not None:
            yield path, message


def _functions(body: dict[str, Any]) -> Iterator[tuple[Path, str, str]]:
    views = body.get("views")
    if isinstance(views, dict):
        for name, view in views.items():
            if name == "lib":
                yield from _modules(("views", "lib"), view)
            elif isinstance(view, dict):
                for kind in ("map", "reduce"):
                    if isinstance(view.get(kind), str):
                        yield ("views", name, kind), view[kind], kind
    for section in ("shows", "lists", "updates", "filters"):  # each value one function
        functions = body.get(section)
        if isinstance(functions, dict):
            for name, source in functions.items():
                if isinstance(source, str):
                    yield (section, name), source, "function"
    for field in ("validate_doc_update", "rewrites"):  # rewrites: a function or a list
        if isinstance(body.get(field), str):
            yield (field,), body[field], "function"
    for section in ("nouveau", "indexes"):
        indexes = body.get(section)
        if isinstance(indexes, dict):
            for name, index in indexes.items():
                if isinstance(index, dict) and isinstance(index.get("index"), str):
                    yield (section, name, "index"), index["index"], "function"


def _modules(path: Path, folder: Any) -> Iterator[tuple[Path, str, str]]:
    if isinstance(folder, str):
        yield path, folder, "module"
    elif isinstance(folder, dict):
        for name, item in folder.items():
            yield from _modules((*path, name), item)


def _reduce_problem(source: str) -> str | None:
    if source in BUILTIN_REDUCES or _RANKED.match(source):
        return None
    return (f"{source!r} is not one of CouchDB's built-in reduces: "
            f"{', '.join(sorted(BUILTIN_REDUCES))}, _top_N, _bottom_N (N from 1 to 100)")


def _function_problem(source: str) -> str | None:
    if not source.strip():
        return "is empty (CouchDB refuses it)"
    context = _context()
    lines = source.count("\n") + 1
    for name in _SANDBOX:
        context.eval(f"var {name} = function () {{}};")
    # Parsed, not run: wrapped in a function that is never called.
    as_expression = _error(context, "(function () { return (" + source + "\n); })", lines)
    if as_expression is None:
        if _DECLARATION.match(source):
            return ("does not evaluate to a function: CouchDB reads a function that starts "
                    "with 'function NAME(' or 'async function' as a declaration, which has "
                    "no value")
        return _value_problem(context, "var __couchsync_value = (" + source + "\n);",
                              lines, source)
    # Statements, the last one's value the function (as CouchDB evaluates a source).
    as_script = _error(context, "(function () {" + source + "\n})", lines)
    if as_script is None:
        return _value_problem(context, "var __couchsync_value = eval(__couchsync_source);",
                              lines, source)
    named = _ANONYMOUS.sub(r"function __couchsync_anonymous\1", source)
    if named != source and _error(context, "(function () {" + named + "\n})", lines) is None:
        return None  # statements then an anonymous function: CouchDB's QuickJS takes them
    return "does not compile: " + as_expression


def _value_problem(context: Any, code: str, lines: int, source: str) -> str | None:
    """Whether running ``code`` (with ``__couchsync_source`` set to ``source``) leaves a
    function in ``__couchsync_value``."""
    context.set("__couchsync_source", source)
    failure = _error(context, code, lines)
    if failure is not None:
        hint = (f" (the built-in is '_{source.strip()}')"
                if "_" + source.strip() in BUILTIN_REDUCES else "")
        return "does not evaluate to a function: " + failure + hint
    if context.eval("typeof __couchsync_value") != "function":
        return "does not evaluate to a function (CouchDB refuses it)"
    return None


def _module_problem(source: str) -> str | None:
    failure = _error(_context(), "(function (module, exports, require) { " + source + "\n });",
                     source.count("\n") + 1)
    return None if failure is None else "CommonJS module does not compile: " + failure


def _context() -> Any:
    """A fresh QuickJS context (nothing one source defines is seen by the next)."""
    import quickjs  # type: ignore[import-untyped]  # imported by manifests with JavaScript only

    context = quickjs.Context()
    context.set_time_limit(_SECONDS)
    return context


def _error(context: Any, code: str, lines: int) -> str | None:
    """QuickJS's error evaluating ``code`` (a source of ``lines`` lines, wrapped on its
    first and last line) as one line: the message, and the line of the source."""
    import quickjs

    try:
        context.eval(code)
    except quickjs.JSException as exc:
        first, *rest = str(exc).splitlines()
        line = _AT_LINE.search("\n".join(rest))
        if line is None:
            return first
        return first + (f" (line {line[1]} of the function)" if int(line[1]) <= lines
                        else " (at the end of the function)")
    return None
