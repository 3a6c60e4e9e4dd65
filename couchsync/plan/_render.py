"""Renderers. Text and markdown read the machine format (``Plan.to_dict()``), so the outputs
cannot disagree; docs/plan-and-apply.md ("The text plan") shows them."""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from couchsync._names import CONFIG
from couchsync._words import counted
from couchsync.plan._fielddiff import field_changes, key_path, line_diff
from couchsync.plan._model import Action, Plan, StepKind
from couchsync.plan.phases import phases, run_order, validates

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
          "database": ("database", "databases"), "config": ("config key", "config keys"),
          "migration": ("migration", "migrations")}
_VERBS = {"+": "create", "~": "update", "-": "delete", "-/+": "replace"}

Paint = Callable[[str, str], str]
#: A rendered line: the renderer's own indentation, and the text. Markdown drops the
#: indentation (its diff blocks start each line with the change's symbol).
Line = tuple[str, str]


def render_text(
    plan: Mapping[str, Any], *, color: bool = False, detail_limit: int | None = DETAIL_LIMIT,
    list_databases: bool = False,
) -> str:
    """The human-readable plan, from ``Plan.to_dict()`` (or ``Plan.view()``) output. The
    same change in several databases is one block (``~ design:app in 9,812 databases``;
    ``list_databases`` names them); blocks past ``detail_limit`` are counted per kind and
    action, so seeding a million documents prints a screenful, not a million blocks."""
    steps: Sequence[Mapping[str, Any]] = plan["steps"]
    skipped = incremental_lines(plan.get("incremental"))
    if not steps:
        return "\n".join([NO_CHANGES_READ if plan.get("errors") else NO_CHANGES, *skipped])

    def paint(style: str, text: str) -> str:
        return f"\x1b[{_COLORS[style]}m{text}\x1b[0m" if color else text

    blocks = _blocks(steps)
    shown = blocks[:detail_limit]
    lines = [HEADER, ""]
    for block in shown:
        lines.extend(indent + text for indent, text in
                     _step_lines(block, paint, list_databases))
        lines.append("")
    rest = _counted_blocks(blocks[len(shown):])
    for (kind, action), where in rest.items():
        count, places = len(where), len(set(where))
        target = (paint("bold", f"db:{where[0]}") if places == 1
                  else counted(places, "database"))
        what = f"{count:,} more {_NOUNS[kind][count != 1]} to {_VERBS[action]}"
        lines.append(f"{paint(action, f'{action:>3}')} {what} in {target}")
    if rest:
        lines += [_INDENT + paint("dim", "# not shown one by one; --format json lists every step"),
                  ""]
    lines.append(paint("bold", _summary_line(plan["summary"], steps)))
    return "\n".join([*lines, *skipped])


#: Databases named per reason a database was read in full, then counted.
NAMED_READ_IN_FULL = 5


def incremental_lines(incremental: Mapping[str, Any] | None) -> list[str]:
    """What an incremental plan did not read, and why it read the others: a blank line
    and a few lines; none when it read every database (``Plan.incremental_dict``)."""
    if incremental is None or not incremental["unchanged"]:
        return []
    unchanged, by_reason = incremental["unchanged"], incremental["read_in_full"]
    total = unchanged + sum(len(names) for names in by_reason.values())
    them = "it" if unchanged == 1 else "them"
    lines = ["", f"Incremental plan: {unchanged:,} of {counted(total, 'database')} not read, "
                 f"unchanged since an apply found {them} converged (--full reads {them})."]
    for reason, names in by_reason.items():
        named = ", ".join(names[:NAMED_READ_IN_FULL])
        more = f" and {len(names) - NAMED_READ_IN_FULL:,} more" if (
            len(names) > NAMED_READ_IN_FULL) else ""
        lines.append(f"  read in full, {reason}: {named}{more}")
    return lines


def _counted_blocks(blocks: Sequence[_Block]) -> dict[tuple[str, str], list[str]]:
    """(kind, action) → the database of each step the blocks stand for."""
    counts: dict[tuple[str, str], list[str]] = {}
    for block in blocks:
        counts.setdefault((block.step["kind"], block.step["action"]), []).extend(
            block.databases)
    return counts


def _summary_line(summary: Mapping[str, int], steps: Sequence[Mapping[str, Any]]) -> str:
    """``Plan: 1 to create, 4 to update, 4 to delete, in 4 databases.``"""
    places = len({step["database"] for step in steps if step["kind"] != "config"})
    return (f"Plan: {summary['create']:,} to create, {summary['update']:,} to update, "
            f"{summary['delete']:,} to delete"
            + (f", in {places:,} databases." if places > 1 else "."))


@dataclass(slots=True)
class _Block:
    """A step, every database it is made in, and in how many of them it builds an
    index over documents (an empty database's build reads nothing)."""

    step: Mapping[str, Any]
    databases: list[str]
    building: int


def _builds(step: Mapping[str, Any]) -> int:
    rebuild = step["rebuild"]
    return 1 if rebuild is not None and rebuild["documents"] > 0 else 0


def in_apply_order(steps: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The steps in the order apply runs them (``phases``): the databases in its groups
    (the node config, the others in plan order, ``_users``, ``_replicator``), each
    database's steps in its phases."""
    chunks: dict[str, list[Mapping[str, Any]]] = {}
    for step in steps:
        chunks.setdefault(step["database"], []).append(step)
    ordered: list[Mapping[str, Any]] = []
    for part in (chunks[name] for group in run_order(list(chunks)) for name in group):
        read = [(step["kind"], step["action"], step["rebuild"]) for step in part]
        validating = any(kind == StepKind.DESIGN_DOC.value and validates(
            StepKind.DESIGN_DOC, Action(action), step["before"], step["after"])
            for (kind, action, _), step in zip(read, part, strict=True))
        keys = [_first_phase(kind, action, bool(rebuild and rebuild["staged"]), validating)
                for kind, action, rebuild in read]
        if all(a <= b for a, b in itertools.pairwise(keys)):  # a million creates: no sort
            ordered += part
        else:
            ordered += [part[i] for i in sorted(range(len(part)), key=keys.__getitem__)]
    return ordered


@functools.cache
def _first_phase(kind: str, action: str, staged: bool, validating: bool) -> int:
    return phases(StepKind(kind), Action(action), staged, validating)[0]


def _blocks(steps: Sequence[Mapping[str, Any]]) -> list[_Block]:
    """The steps in apply order, the same change in several databases made one block;
    only steps whose (kind, id, action) recurs are compared by value (encoded)."""
    steps = in_apply_order(steps)
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
    groups: dict[tuple[Any, ...] | None, _Block] = {}
    for step in steps:
        key = signature(step) if recurring[step["kind"], step["id"], step["action"]] > 1 else None
        if key is None or key not in groups:
            blocks.append(_Block(step, [], 0))
            groups[key] = blocks[-1]
        groups[key].databases.append(step["database"])
        groups[key].building += _builds(step)
    return blocks


#: A database section with more blocks than this is folded (``<details>``) in markdown.
FOLD_OVER = 10
#: Characters a markdown plan keeps under: GitHub refuses comments over 65,536, and
#: leaves room for a bot's own words around the plan.
MARKDOWN_BUDGET = 60_000
#: Databases listed by name in a markdown plan summarised to fit its budget.
SUMMARY_DATABASES = 20


def render_markdown(plan: Mapping[str, Any], *, detail_limit: int | None = DETAIL_LIMIT,
                    fold_over: int = FOLD_OVER, budget: int = MARKDOWN_BUDGET,
                    full_plan: str | None = None) -> str:
    """The plan as a pull-request comment (GitHub-flavoured markdown): the summary and a
    table per database, then each database's blocks as the text plan words them, in a
    fenced ``diff`` block (folded past ``fold_over`` blocks). A comment over ``budget``
    characters is summarised to fit: changes counted, the first databases named, as many
    blocks as fit, and where the full plan is (``full_plan``, e.g. the ``--out`` file)."""
    blocks = _blocks(plan["steps"])
    shown = blocks[:detail_limit]
    per_database: dict[str, Counter[str]] = {}
    for step in plan["steps"]:
        per_database.setdefault(step["database"], Counter()).update(_COUNTED[step["action"]])
    parts = _Markdown(plan, _summary_line(plan["summary"], plan["steps"]), blocks,
                      _counted_blocks(blocks), per_database, fold_over, full_plan)
    full = parts.render(shown)
    if len(full) <= budget:
        return full
    # Summarised, with as many blocks as fit (found by halving: each try renders it all).
    parts.summarised = len(full)
    low, high = 0, len(shown)
    text = parts.render([])
    while low < high:
        middle = (low + high + 1) // 2
        attempt = parts.render(shown[:middle])
        if len(attempt) <= budget:
            low, text = middle, attempt
        else:
            high = middle - 1
    return text


@dataclass(slots=True)
class _Markdown:
    """One plan's markdown, rendered with a chosen set of blocks in full."""

    plan: Mapping[str, Any]
    summary: str  # _summary_line
    blocks: list[_Block]
    counts: dict[tuple[str, str], list[str]]  # _counted_blocks(blocks)
    per_database: dict[str, Counter[str]]  # database → create/update/delete counts
    fold_over: int
    full_plan: str | None
    summarised: int = 0  # the full comment's length, when it is summarised

    def render(self, shown: Sequence[_Block]) -> str:
        steps: Sequence[Mapping[str, Any]] = self.plan["steps"]
        errors: Mapping[str, str] = self.plan.get("errors") or {}
        at_most = SUMMARY_DATABASES if self.summarised else None
        lines = ["### couchsync plan", ""]
        if not steps:
            lines.append(NO_CHANGES_READ if errors else NO_CHANGES)
        else:
            lines.append(f"**{self.summary}**")
            if self.summarised:
                full = (f"the full plan is saved in `{self.full_plan}`" if self.full_plan
                        else "the full plan: run `couchsync plan --format json`")
                lines += ["", f"_This plan is too long for one comment ({self.summarised:,} "
                          f"characters): it is summarised here; {full}._", "",
                          "| Change | Steps | Databases |", "|---|---:|---:|"]
                for (kind, action), where in self.counts.items():
                    lines.append(f"| {action} {_NOUNS[kind][1]} to {_VERBS[action]} | "
                                 f"{len(where):,} | {len(set(where)):,} |")
            listed = list(self.per_database.items())[:at_most]
            lines += ["", "| Database | Create | Update | Delete |", "|---|---:|---:|---:|"]
            lines += [f"| {_place(name)} | {c['create']:,} | {c['update']:,} | "
                      f"{c['delete']:,} |" for name, c in listed]
            if len(listed) < len(self.per_database):
                more = counted(len(self.per_database) - len(listed), "more database")
                lines.append(f"| … and {more} | | | |")
        if errors:
            listed_errors = list(errors.items())[:at_most]
            lines += ["", f"**Could not read {counted(len(errors), 'database')}**; nothing "
                          f"was planned for {'them' if len(errors) != 1 else 'it'}:", ""]
            lines += [f"- `{name}`: {reason}" for name, reason in listed_errors]
            if len(listed_errors) < len(errors):
                lines.append(f"- … and {len(errors) - len(listed_errors):,} more")
        lines += self.sections(shown)
        if steps and len(shown) < len(self.blocks):
            more = counted(len(self.blocks) - len(shown), "more change")
            lines += ["", f"… and {more}, not shown one by one (`couchsync plan --format "
                          "json` lists every step)."]
        return "\n".join(lines) + "\n"

    def sections(self, shown: Sequence[_Block]) -> Iterator[str]:
        """The blocks, by database (those made in several databases together), each
        section a fenced ``diff`` block, folded past ``fold_over`` blocks."""
        sections: dict[str, list[_Block]] = {}
        for block in shown:
            # "": in several databases
            place = block.databases[0] if len(block.databases) == 1 else ""
            sections.setdefault(place, []).append(block)
        for place, section in sections.items():
            title = (_place(place, "db:") if place
                     else "The same change in several databases")
            body = []
            for block in section:
                body += [text for _, text in _step_lines(block, lambda _, text: text,
                                                           not self.summarised)]
                body.append("")
            # A fence longer than any run of backticks inside (a template literal).
            fence = "`" * max([3, *(len(run) + 1 for line in body
                                    for run in re.findall("`+", line))])
            body = [f"{fence}diff", *body[:-1], fence]
            yield from ["", f"#### {title}", ""]
            if len(section) > self.fold_over:
                yield from ["<details>", f"<summary>{counted(len(section), 'change')}"
                            "</summary>", "", *body, "", "</details>"]
            else:
                yield from body


_COUNTED = {"+": ("create",), "~": ("update",), "-": ("delete",), "-/+": ("delete", "create")}


def _place(name: str, prefix: str = "") -> str:
    """A database as a markdown plan names it; config steps are the nodes' config."""
    return "node config (every node)" if name == CONFIG else f"`{prefix}{name}`"


def render_json(plan: Plan) -> str:
    """``plan.to_dict()`` as indented JSON with sorted keys (stable for diffs and tests)."""
    return json.dumps(plan.to_dict(), indent=2, sort_keys=True, ensure_ascii=False)


#: A changed multi-line string's diff lines go this far under its path.
_DIFF_INDENT = _INDENT + " " * 4


def _step_lines(block: _Block, paint: Paint, list_databases: bool) -> Iterator[Line]:
    step, databases = block.step, block.databases
    action = step["action"]
    symbol = paint(action, action)
    pad = " " * (3 - len(action))
    if len(databases) == 1:
        rev = f" (rev {step['rev']})" if step.get("rev") else ""
        yield pad, f"{symbol} {paint('bold', step['address'])}{rev}"
    else:
        target = step["address"].removeprefix(f"db:{step['database']}").lstrip("/")
        yield pad, (f"{symbol} {paint('bold', target or 'database')} "
                    f"in {len(databases):,} databases")
    if step.get("reason"):
        yield _INDENT, paint("dim", f"# {step['reason']}")
    if step.get("rebuild") and block.building:
        yield _INDENT, paint("dim", f"# {_rebuild_text(step['rebuild'], block)}")
    before, after = step.get("before"), step.get("after")
    if step["kind"] == StepKind.MIGRATION.value:
        yield from _migration_lines(after or {}, paint)
    elif action in (Action.UPDATE.value, Action.REPLACE.value):
        before, after = _without_attachments(before), _without_attachments(after)
        yield from _change_lines(before, after, paint)
    elif action == Action.CREATE.value:
        yield from _listing("+", _without_attachments(after), paint)
    else:
        yield from _listing("-", _without_attachments(before), paint)
    for op, text in _attachment_changes(_attachments_of(step.get("before")),
                                        _attachments_of(step.get("after"))):
        yield _INDENT, f"{paint(op, op)} attachment {text}"
    if len(databases) > 1:
        if list_databases:
            yield from ((_INDENT + "  ", f"db:{name}") for name in databases)
        else:
            yield _INDENT, paint("dim", "# --list-databases names them")


def _attachments_of(body: Any) -> dict[str, Any]:
    return (body.get("_attachments") or {}) if isinstance(body, dict) else {}


def _without_attachments(body: Any) -> Any:
    """``body`` without ``_attachments``: they are shown a line each, by name and size."""
    if isinstance(body, dict) and "_attachments" in body:
        return {key: value for key, value in body.items() if key != "_attachments"}
    return body


def _change_lines(before: Any, after: Any, paint: Paint, indent: str = "") -> Iterator[Line]:
    """Each changed field: ``~ path: old → new`` (a multi-line string as a line diff)."""
    for change in field_changes(before, after):
        if change.op == "~" and (diff := line_diff(change.before, change.after)):
            yield _INDENT + indent, f"{paint('~', '~')} {change.path}:"
            for line in diff:
                style = {"+": "+", "-": "-"}.get(line[:1], "dim")
                yield _DIFF_INDENT + indent, line if line[:1] == " " else paint(style, line)
            continue
        value = (f"{_json(change.before)} → {_json(change.after)}" if change.op == "~"
                 else _json(change.after if change.op == "+" else change.before))
        yield _INDENT + indent, f"{paint(change.op, change.op)} {change.path}: {value}"


def _migration_lines(preview: Mapping[str, Any], paint: Paint) -> Iterator[Line]:
    """A migration's preview: its counts, the documents it cannot change, a missing
    index, and its samples as field changes."""
    changed, deleted = preview["changed"], preview["deleted"]
    text = (f"{counted(preview['matched'], 'document')} matched, {changed:,} to change"
            + (f" ({deleted:,} by deleting)" if deleted else ""))
    if preview.get("resumed"):
        text += f"; {preview['resumed']:,} done by the interrupted run"
    yield _INDENT, text
    if preview["failed"]:
        yield _INDENT, paint("-", f"! {counted(preview['failed'], 'document')} cannot be "
                                  "migrated:")
        for error in preview.get("errors", []):
            yield _INDENT + "    ", error
    if preview.get("unindexed"):
        fields = ", ".join(preview["unindexed"])
        yield _INDENT, paint("dim", "# no index serves its selector, so every document is "
                                    f"read: add an index on [{fields}]")
    for sample in preview.get("samples", []):
        yield _INDENT, f"{paint('~', '~')} doc:{sample['id']}"
        yield from _change_lines(sample["before"], sample["after"], paint, "  ")


def _rebuild_text(rebuild: Mapping[str, Any], block: _Block) -> str:
    """What building the step's index costs, and how it is rolled out (only said where
    the build reads documents: an empty database's builds nothing)."""
    databases = len(block.databases)
    if databases > 1:
        text = ("builds an index in each database" if block.building == databases
                else f"builds an index in the {block.building:,} of these {databases:,} "
                     "databases that hold documents")
    else:
        text = f"builds an index over {counted(rebuild['documents'], 'document')}"
        if rebuild.get("index_bytes") is not None:
            text += f" (the one it replaces: {_size(rebuild['index_bytes'])})"
    if rebuild.get("staged"):
        return text + "; staged: built under a staging id first, then swapped in"
    return text + "; in place: queries of it wait until it is built"


def _attachment_changes(before: Mapping[str, Any], after: Mapping[str, Any]
                     ) -> Iterator[tuple[str, str]]:
    """``(op, text)`` for each attachment a step adds, replaces or removes:
    ``+ logo.png (image/png, 48.2 KB)``, ``~ app.js (12.1 KB → 12.4 KB)``."""
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if new is None:
            yield "-", f"{name} ({_size(int(old.get('length', 0)))})" if old else name
        elif "file" not in new:
            continue  # kept as the server has it
        elif old is None:
            yield "+", f"{name} ({new['content_type']}, {_size(new['length'])})"
        else:
            was, now = int(old.get("length", 0)), int(new["length"])
            if was == now:
                sizes = f"{_size(now)}, content changed"
            elif _size(was) == _size(now):  # rounded alike: the bytes tell them apart
                sizes = f"{was:,} bytes → {now:,} bytes"
            else:
                sizes = f"{_size(was)} → {_size(now)}"
            kind = ("" if old.get("content_type") == new["content_type"]
                    else f"{old.get('content_type')} → {new['content_type']}, ")
            yield "~", f"{name} ({kind}{sizes})"


def _size(count: int) -> str:
    units = ("bytes", "KB", "MB", "GB", "TB")
    size, unit = float(count), 0
    while size >= 1024 and unit < len(units) - 1:
        size, unit = size / 1024, unit + 1
    return f"{count:,} bytes" if unit == 0 else f"{size:,.1f} {units[unit]}"


def _listing(op: str, value: Any, paint: Paint) -> Iterator[Line]:
    """The first fields of a created or deleted value, each on its own line."""
    if not isinstance(value, dict):
        if value is not None:
            yield _INDENT, f"{paint(op, op)} {_short(value)}"
        return
    keys = sorted(value)
    for key in keys[:MAX_LISTED_FIELDS]:
        yield _INDENT, f"{paint(op, op)} {key_path('', key)}: {_short(value[key])}"
    if len(keys) > MAX_LISTED_FIELDS:
        yield _INDENT + "  ", f"… ({counted(len(keys) - MAX_LISTED_FIELDS, 'more field')})"


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
    head = f"{'**Ignored**' if markdown else 'Ignored'} (the server's values kept, not compared):"
    return "\n".join([head, *(f"- {line}" if markdown else f"  {line}" for line in lines)])


_UNREAD = {
    "create_only_existing": ("create_only document", "create_only documents",
                             "on the server, not compared"),
    "ignoring_unread": ("document", "documents",
                        "with ignored fields, not read: unchanged since the last apply"),
}
