"""Renderers. The text renderer reads the machine format (``Plan.to_dict()``),
the same structure ``render_json`` prints, so the two outputs cannot disagree.

Text layout, one block per step::

      ~ db:users/doc:settings (rev 2-abc)
          # edited on the server since couchsync wrote it
          ~ profile.email: "a@x" → "b@x"
          + tags[2]: "new"
          - legacy: true

    Plan: 0 to create, 1 to update, 0 to delete.

Creates list the new value's first fields, updates and replaces only the
paths that differ, deletes what was read before (a document delete reads
only the revision).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from couchsync.plan._fielddiff import field_changes, key_path
from couchsync.plan._model import CONFIG, Action, Plan

NO_CHANGES = "No changes. The server matches the manifests."
NO_CHANGES_READ = "No changes in the databases that could be read."
HEADER = "couchsync will perform the following actions:"

DETAIL_LIMIT = 100  # steps rendered in full; the rest are counted
MAX_LISTED_FIELDS = 8  # a created document shows this many fields, then "… (N more fields)"
MAX_LISTED_VALUE = 72  # characters of a listed value before it is cut with "…"
_INDENT = " " * 6

_COLORS = {"+": "32", "~": "33", "-": "31", "-/+": "35", "bold": "1", "dim": "2"}

_NOUNS = {"document": ("document", "documents"), "design_doc": ("design doc", "design docs"),
          "index": ("index", "indexes"), "security": ("security object", "security objects"),
          "database": ("database", "databases"), "config": ("config key", "config keys")}
_VERBS = {"+": "create", "~": "update", "-": "delete", "-/+": "replace"}

Paint = Callable[[str, str], str]


def render_text(
    plan: Mapping[str, Any], *, color: bool = False, detail_limit: int | None = DETAIL_LIMIT,
    list_databases: bool = False,
) -> str:
    """The human-readable plan, from ``Plan.to_dict()`` (or ``Plan.view()``) output.

    The same change in several databases (a fleet's new design doc) is one block,
    ``~ design:app in 9,812 databases``; ``list_databases`` names them under it.
    The first ``detail_limit`` blocks are shown in full (``None``: all); the rest
    are counted per kind and action, so seeding a million documents prints a
    screenful, not a million blocks. ANSI colors only if asked.
    """
    steps: Sequence[Mapping[str, Any]] = plan["steps"]
    if not steps:
        return NO_CHANGES_READ if plan.get("errors") else NO_CHANGES

    def paint(style: str, text: str) -> str:
        return f"\x1b[{_COLORS[style]}m{text}\x1b[0m" if color else text

    blocks = _blocks(steps)
    shown = blocks if detail_limit is None else blocks[:detail_limit]
    lines = [HEADER, ""]
    for step, databases in shown:
        lines.extend(_step_lines(step, databases, paint, list_databases))
        lines.append("")
    rest: dict[tuple[str, str], list[str]] = {}
    for step, databases in blocks[len(shown):]:
        rest.setdefault((step["kind"], step["action"]), []).extend(databases)
    for (kind, action), where in rest.items():
        count, places = len(where), len(set(where))
        target = (paint("bold", f"db:{where[0]}") if places == 1
                  else f"{places:,} databases")
        what = f"{count:,} more {_NOUNS[kind][count != 1]} to {_VERBS[action]}"
        lines.append(f"{paint(action, f'{action:>3}')} {what} in {target}")
    if rest:
        lines += [_INDENT + paint("dim", "# not shown one by one; --format json lists every step"),
                  ""]
    lines.append(paint("bold", _summary_line(plan["summary"], steps)))
    return "\n".join(lines)


def _summary_line(summary: Mapping[str, int], steps: Sequence[Mapping[str, Any]]) -> str:
    """``Plan: 1 to create, 4 to update, 4 to delete, in 4 databases.``"""
    places = len({step["database"] for step in steps if step["kind"] != "config"})
    return (f"Plan: {summary['create']:,} to create, {summary['update']:,} to update, "
            f"{summary['delete']:,} to delete"
            + (f", in {places:,} databases." if places > 1 else "."))


_Block = tuple[Mapping[str, Any], list[str]]  # a step, and every database it is made in


def _blocks(steps: Sequence[Mapping[str, Any]]) -> list[_Block]:
    """The steps, the same change in several databases made one block.

    Only steps whose (kind, id, action) recurs are compared by value, so a
    plan of a million document creates in one database encodes no JSON here.
    """
    recurring = Counter((s["kind"], s["id"], s["action"]) for s in steps)
    # id(value) → (value, JSON): values shared across steps encode once; each value is
    # kept, so that its id is not reused by another while this runs.
    encoded: dict[int, tuple[Any, str]] = {}

    def signature(step: Mapping[str, Any]) -> tuple[Any, ...]:
        values = []
        for key in ("before", "after"):
            value = step[key]
            if id(value) not in encoded:
                encoded[id(value)] = (value, _json(value))
            values.append(encoded[id(value)][1])
        return (step["kind"], step["id"], step["action"], step["reason"], *values)

    blocks: list[_Block] = []
    groups: dict[tuple[Any, ...], list[str]] = {}
    for step in steps:
        if recurring[step["kind"], step["id"], step["action"]] < 2:
            blocks.append((step, [step["database"]]))
            continue
        key = signature(step)
        if key in groups:
            groups[key].append(step["database"])
        else:
            groups[key] = [step["database"]]
            blocks.append((step, groups[key]))
    return blocks


#: A database section with more blocks than this is folded (``<details>``) in markdown.
FOLD_OVER = 10


def render_markdown(plan: Mapping[str, Any], *, detail_limit: int | None = DETAIL_LIMIT,
                    fold_over: int = FOLD_OVER) -> str:
    """The plan as a pull-request comment (GitHub-flavoured markdown), from
    ``Plan.to_dict()`` (or ``Plan.view()``) output.

    The summary comes first (one line, and a table of changes per database), then
    each database's steps, in the text plan's wording, in a fenced ``diff`` block;
    a section of more than ``fold_over`` blocks is folded (``<details>``), and
    blocks past ``detail_limit`` are counted, as in the text plan.
    """
    steps: Sequence[Mapping[str, Any]] = plan["steps"]
    errors: Mapping[str, str] = plan.get("errors") or {}
    lines = ["### couchsync plan", ""]
    if not steps:
        lines.append(NO_CHANGES_READ if errors else NO_CHANGES)
    else:
        lines += [f"**{_summary_line(plan['summary'], steps)}**", "",
                  "| Database | Create | Update | Delete |", "|---|---:|---:|---:|"]
        per_database: dict[str, Counter[str]] = {}
        for step in steps:
            counts = per_database.setdefault(step["database"], Counter())
            for verb in _COUNTED[step["action"]]:
                counts[verb] += 1
        lines += [f"| {_place(name)} | {c['create']:,} | {c['update']:,} | {c['delete']:,} |"
                  for name, c in per_database.items()]
    if errors:
        lines += ["", f"**Could not read {len(errors):,} database"
                      f"{'s' if len(errors) != 1 else ''}**; nothing was planned for "
                      f"{'them' if len(errors) != 1 else 'it'}:", ""]
        lines += [f"- `{name}`: {reason}" for name, reason in errors.items()]
    blocks = _blocks(steps)
    shown = blocks if detail_limit is None else blocks[:detail_limit]
    sections: dict[str, list[_Block]] = {}
    for block in shown:
        place = block[1][0] if len(block[1]) == 1 else ""  # "": in several databases
        sections.setdefault(place, []).append(block)
    for place, section in sections.items():
        title = (_place(place, "db:") if place
                 else "The same change in several databases")
        body = []
        for step, databases in section:
            body += [line.strip() for line in _step_lines(step, databases, _plain, True)]
            body.append("")
        # A fence longer than any run of backticks inside (a function's template literal).
        fence = "`" * max([3, *(len(run) + 1 for line in body
                                for run in re.findall("`+", line))])
        body = [f"{fence}diff", *body[:-1], fence]
        lines += ["", f"#### {title}", ""]
        if len(section) > fold_over:
            lines += ["<details>", f"<summary>{len(section):,} changes</summary>", "", *body,
                      "", "</details>"]
        else:
            lines += body
    if len(shown) < len(blocks):
        lines += ["", f"… and {len(blocks) - len(shown):,} more changes, not shown one by "
                      "one (`couchsync plan --format json` lists every step)."]
    return "\n".join(lines) + "\n"


_COUNTED = {"+": ("create",), "~": ("update",), "-": ("delete",), "-/+": ("delete", "create")}


def _place(name: str, prefix: str = "") -> str:
    """A database as a markdown plan names it; config steps are the nodes' config."""
    return "node config (every node)" if name == CONFIG else f"`{prefix}{name}`"


def _plain(style: str, text: str) -> str:
    return text


def render_json(plan: Plan) -> str:
    """``plan.to_dict()`` as indented JSON with sorted keys (stable for diffs and tests)."""
    return json.dumps(plan.to_dict(), indent=2, sort_keys=True, ensure_ascii=False)


def _step_lines(step: Mapping[str, Any], databases: list[str], paint: Paint,
                list_databases: bool) -> Iterator[str]:
    action = step["action"]
    if len(databases) == 1:
        rev = f" (rev {step['rev']})" if step.get("rev") else ""
        yield f"{paint(action, f'{action:>3}')} {paint('bold', step['address'])}{rev}"
    else:
        target = step["address"].removeprefix(f"db:{step['database']}").lstrip("/")
        yield (f"{paint(action, f'{action:>3}')} {paint('bold', target or 'database')} "
               f"in {len(databases):,} databases")
    if step.get("reason"):
        yield _INDENT + paint("dim", f"# {step['reason']}")
    if step.get("rebuild"):
        yield _INDENT + paint("dim", f"# {_rebuild_text(step['rebuild'], len(databases))}")
    before, after = step.get("before"), step.get("after")
    if action in (Action.UPDATE.value, Action.REPLACE.value):
        for change in field_changes(before, after):
            if change.op == "~":
                text = f"{change.path}: {_json(change.before)} → {_json(change.after)}"
            else:
                value = change.after if change.op == "+" else change.before
                text = f"{change.path}: {_json(value)}"
            yield f"{_INDENT}{paint(change.op, change.op)} {text}"
    elif action == Action.CREATE.value:
        yield from _listing("+", after, paint)
    else:
        yield from _listing("-", before, paint)
    if len(databases) > 1:
        if list_databases:
            yield from (f"{_INDENT}  db:{name}" for name in databases)
        else:
            yield _INDENT + paint("dim", "# --list-databases names them")


def _rebuild_text(rebuild: Mapping[str, Any], databases: int) -> str:
    """What building the step's index costs, and how it is rolled out."""
    if databases > 1:
        text = "builds an index in each database"
    else:
        text = f"builds an index over {rebuild['documents']:,} documents"
        if rebuild.get("index_bytes") is not None:
            text += f" (the one it replaces: {_size(rebuild['index_bytes'])})"
    if rebuild.get("staged"):
        return text + "; staged: built under a staging id first, then swapped in"
    return text + "; in place: queries of it wait until it is built"


def _size(count: int) -> str:
    units = ("bytes", "KB", "MB", "GB", "TB")
    size, unit = float(count), 0
    while size >= 1024 and unit < len(units) - 1:
        size, unit = size / 1024, unit + 1
    return f"{count:,} bytes" if unit == 0 else f"{size:,.1f} {units[unit]}"


def _listing(op: str, value: Any, paint: Paint) -> Iterator[str]:
    """The first fields of a created or deleted value, each on its own line."""
    if not isinstance(value, dict):
        if value is not None:
            yield f"{_INDENT}{paint(op, op)} {_short(value)}"
        return
    keys = sorted(value)
    for key in keys[:MAX_LISTED_FIELDS]:
        yield f"{_INDENT}{paint(op, op)} {key_path('', key)}: {_short(value[key])}"
    if len(keys) > MAX_LISTED_FIELDS:
        yield f"{_INDENT}  … ({len(keys) - MAX_LISTED_FIELDS:,} more fields)"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))


def _short(value: Any) -> str:
    text = _json(value)
    return text if len(text) <= MAX_LISTED_VALUE else text[: MAX_LISTED_VALUE - 1] + "…"


def render_ignored(plan: Mapping[str, Any], *, markdown: bool = False) -> str:
    """What ``-v`` adds (``Plan.ignored``, ``Plan.unread``): the ignored fields whose
    values the server keeps, by document read, and the documents left unread; "" when
    none."""
    ignored: Mapping[str, Mapping[str, Any]] = plan.get("ignored") or {}
    code: Callable[[str], str] = (lambda text: f"`{text}`") if markdown else (lambda text: text)
    lines = []
    for database, notes in ignored.items():
        for doc_id, paths in notes.get("fields", {}).items():
            lines.append(f"{code(f'db:{database}/doc:{doc_id}')}: "
                         + ", ".join(code(path) for path in paths))
        for key, (one, many, why) in _UNREAD.items():
            if notes.get(key):
                lines.append(f"{code(f'db:{database}')}: {notes[key]:,} "
                             f"{one if notes[key] == 1 else many} {why}")
    if not lines:
        return ""
    head = ("**Ignored** (the server's values kept, not compared):" if markdown
            else "Ignored (the server's values kept, not compared):")
    return "\n".join([head, *(f"- {line}" if markdown else f"  {line}" for line in lines)])


_UNREAD = {
    "create_only_existing": ("create_only document", "create_only documents",
                             "on the server, not compared"),
    "ignoring_unread": ("document", "documents",
                        "with ignored fields, not read: unchanged since the last apply"),
}
