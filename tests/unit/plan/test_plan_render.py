"""The text renderer, fed with ``Plan.to_dict()`` output."""

from __future__ import annotations

import re

from couchsync.plan import Action, Plan, Step, StepKind, render_markdown, render_text


def render(*steps: Step, color: bool = False) -> str:
    return render_text(Plan(list(steps)).to_dict(), color=color)


def test_empty_plan() -> None:
    assert render() == "No changes. The server matches the manifests."


def test_update_shows_field_paths_old_and_new() -> None:
    step = Step(Action.UPDATE, StepKind.DOCUMENT, "users", "settings",
                before={"profile": {"email": "a@x"}, "tags": ["a"], "legacy": True},
                after={"profile": {"email": "b@x"}, "tags": ["a", "new"]},
                rev="2-abc", reason="edited on the server since couchsync wrote it")
    assert render(step) == "\n".join([
        "couchsync will perform the following actions:",
        "",
        "  ~ db:users/doc:settings (rev 2-abc)",
        "      # edited on the server since couchsync wrote it",
        "      - legacy: true",
        '      ~ profile.email: "a@x" → "b@x"',
        '      + tags[1]: "new"',
        "",
        "Plan: 0 to create, 1 to update, 0 to delete.",
    ])


def test_create_of_a_long_document_lists_its_first_fields_only() -> None:
    body: dict[str, object] = {f"field{i:02}": i for i in range(12)}
    body["text"] = "x" * 100
    step = Step(Action.CREATE, StepKind.DOCUMENT, "users", "big", after=body)
    lines = render(step).splitlines()
    assert lines[2] == "  + db:users/doc:big"
    assert lines[3:11] == [f"      + field{i:02}: {i}" for i in range(8)]
    assert lines[11] == "        … (5 more fields)"
    short = render(Step(Action.CREATE, StepKind.DOCUMENT, "users", "t",
                        after={"text": "x" * 100})).splitlines()[3]
    assert short == '      + text: "' + "x" * 70 + "…"
    assert len(short) == 6 + 2 + len("text: ") + 72


def test_delete_and_replace_symbols_line_up() -> None:
    text = render(
        Step(Action.DELETE, StepKind.DOCUMENT, "users", "old", rev="1-a", reason="prune"),
        Step(Action.REPLACE, StepKind.INDEX, "users", "by-email",
             before={"fields": [{"email": "asc"}]}, after={"fields": [{"email": "desc"}]},
             reason="fields changed"),
    )
    assert "  - db:users/doc:old (rev 1-a)\n      # prune\n\n" in text
    assert '-/+ db:users/index:by-email\n      # fields changed\n' \
           '      ~ fields[0].email: "asc" → "desc"\n' in text
    assert text.endswith("Plan: 1 to create, 0 to update, 2 to delete.")


def test_deleted_database_shows_what_it_held() -> None:
    text = render(Step(Action.DELETE, StepKind.DATABASE, "old", before={"doc_count": 3},
                       reason="state: absent"))
    assert "  - db:old\n      # state: absent\n      - doc_count: 3\n" in text


def test_colors_only_when_asked() -> None:
    step = Step(Action.CREATE, StepKind.DATABASE, "users", after={}, reason="not on the server")
    assert "\x1b[" not in render(step)
    colored = render(step, color=True)
    assert "  \x1b[32m+\x1b[0m \x1b[1mdb:users\x1b[0m" in colored
    assert "\x1b[2m# not on the server\x1b[0m" in colored


def test_steps_past_the_detail_limit_are_counted_per_database_kind_and_action() -> None:
    creates = [Step(Action.CREATE, StepKind.DOCUMENT, "users", f"u{i}", after={"n": i},
                    reason="not on the server") for i in range(5)]
    deletes = [Step(Action.DELETE, StepKind.DOCUMENT, "logs", f"l{i}", rev="1-a")
               for i in range(2)]
    text = render_text(Plan([*creates, *deletes]).view(), detail_limit=2)
    assert text.splitlines()[2:] == [
        "  + db:users/doc:u0",
        "      # not on the server",
        "      + n: 0",
        "",
        "  + db:users/doc:u1",
        "      # not on the server",
        "      + n: 1",
        "",
        "  + 3 more documents to create in db:users",
        "  - 2 more documents to delete in db:logs",
        "      # not shown one by one; --format json lists every step",
        "",
        "Plan: 5 to create, 0 to update, 2 to delete, in 2 databases.",
    ]


def test_view_and_dict_render_the_same() -> None:
    steps = [Step(Action.UPDATE, StepKind.DOCUMENT, "users", "a", before={"x": 1},
                  after={"x": 2}, rev="1-a", reason="r")]
    plan = Plan(steps)
    assert render_text(plan.view()) == render_text(plan.to_dict())
    assert [dict(view) for view in plan.view()["steps"]] == plan.to_dict()["steps"]


def test_a_rebuilding_step_states_its_cost_and_rollout() -> None:
    views = {"views": {"all": {"map": "function (doc) { emit(doc.x); }"}}}
    staged = Step(Action.UPDATE, StepKind.DESIGN_DOC, "orders", "_design/app",
                  before={"views": {"all": {"map": "old"}}}, after=views, rev="3-a",
                  reason="differs from the manifests",
                  rebuild={"documents": 100_000, "index_bytes": 12_900_000, "staged": True})
    in_place = Step(Action.CREATE, StepKind.INDEX, "orders", "by-x",
                    after={"fields": [{"x": "asc"}], "type": "json"}, reason="not on the server",
                    rebuild={"documents": 100_000, "index_bytes": None, "staged": False})
    lines = render(staged, in_place).splitlines()
    assert lines[-5:-3] == [
        "      # differs from the manifests",
        "      # builds an index over 100,000 documents (the one it replaces: 12.3 MB); "
        "staged: built under a staging id first, then swapped in",
    ]
    assert ("      # builds an index over 100,000 documents; in place: queries of it wait "
            "until it is built") in lines


def test_markdown_fences_outgrow_the_backticks_inside() -> None:
    step = Step(Action.CREATE, StepKind.DOCUMENT, "docs", "readme",
                after={"text": "use ```js blocks``` and `x`"}, reason="not on the server")
    text = render_markdown(Plan([step]).to_dict())
    assert "\n````diff\n+ db:docs/doc:readme\n" in text
    assert text.endswith('+ text: "use ```js blocks``` and `x`"\n````\n')
    assert text.startswith("### couchsync plan\n\n**Plan: 1 to create, 0 to update, "
                           "0 to delete.**\n")


MAP_BEFORE = ("function (doc) {\n  if (doc.type === 'user') {\n    emit(doc.email, null);\n"
              "  }\n}")
MAP_AFTER = MAP_BEFORE.replace("emit(doc.email, null)", "emit(doc.email, doc.name)")


def design_update(before: str, after: str) -> Step:
    return Step(Action.UPDATE, StepKind.DESIGN_DOC, "app", "_design/app",
                before={"views": {"by_email": {"map": before}}},
                after={"views": {"by_email": {"map": after}}}, rev="1-a",
                reason="differs from the manifests")


def test_a_changed_function_shows_as_a_line_diff_under_its_path() -> None:
    text = render(design_update(MAP_BEFORE, MAP_AFTER))
    assert "\n".join([
        "      ~ views.by_email.map:",
        "          @@ -1,5 +1,5 @@",
        "           function (doc) {",
        "             if (doc.type === 'user') {",
        "          -    emit(doc.email, null);",
        "          +    emit(doc.email, doc.name);",
        "             }",
        "           }",
    ]) in text
    markdown = render_markdown(Plan([design_update(MAP_BEFORE, MAP_AFTER)]).to_dict())
    assert "\n".join([
        "~ views.by_email.map:",
        "@@ -1,5 +1,5 @@",
        " function (doc) {",
        "   if (doc.type === 'user') {",
        "-    emit(doc.email, null);",
        "+    emit(doc.email, doc.name);",
        "   }",
        " }",
    ]) in markdown


def test_a_line_diff_shows_three_lines_of_context_and_json_keeps_the_values() -> None:
    before = "\n".join(f"line {i};" for i in range(20))
    after = before.replace("line 10;", "line ten;")
    plan = Plan([design_update(before, after)])
    lines = render_text(plan.to_dict()).splitlines()
    start = lines.index("      ~ views.by_email.map:")
    assert lines[start + 1:start + 9] == [
        "          @@ -8,7 +8,7 @@",
        *(f"           line {i};" for i in (7, 8, 9)),
        "          -line 10;",
        "          +line ten;",
        *(f"           line {i};" for i in (11, 12)),
    ]
    assert "line 0;" not in "\n".join(lines)  # far from the change: not shown
    import json

    from couchsync.plan import render_json
    step = json.loads(render_json(plan))["steps"][0]
    assert step["before"]["views"]["by_email"]["map"] == before
    assert step["after"]["views"]["by_email"]["map"] == after


def test_one_line_strings_still_show_old_and_new() -> None:
    text = render(design_update("function (doc) { emit(1); }", "function (doc) { emit(2); }"))
    assert ('      ~ views.by_email.map: "function (doc) { emit(1); }" → '
            '"function (doc) { emit(2); }"') in text


def fleet_plan(databases: int) -> Plan:
    """A fleet's plan: in each database the same design doc change (folded), and a
    document that differs per database (one block each)."""
    steps = []
    for i in range(databases):
        name = f"userdb-{i:05}"
        steps.append(design_update(MAP_BEFORE, MAP_AFTER))
        steps[-1].database = name
        steps.append(Step(Action.CREATE, StepKind.DOCUMENT, name, "profile",
                          after={"owner": f"user {i}", "plan": "free"},
                          reason="not on the server"))
        if i % 3 == 0:
            steps.append(Step(Action.DELETE, StepKind.DOCUMENT, name, "old", rev="1-a",
                              reason="prune"))
    return Plan(steps)


def summary_counts(markdown: str) -> dict[tuple[str, str], tuple[int, int]]:
    """The summarised comment's table: (action, noun) → (steps, databases)."""
    rows = re.findall(r"^\| (\S+) (.+?) to \w+ \| ([\d,]+) \| ([\d,]+) \|$", markdown,
                      re.MULTILINE)
    return {(action, noun): (int(steps.replace(",", "")), int(places.replace(",", "")))
            for action, noun, steps, places in rows}


def test_a_markdown_plan_of_10000_databases_fits_a_comment_and_counts_every_step() -> None:
    plan = fleet_plan(10_000)
    markdown = render_markdown(plan.view())
    assert len(markdown) < 65_536
    nouns = {"document": "documents", "design_doc": "design docs"}
    expected: dict[tuple[str, str], tuple[int, set[str]]] = {}
    for step in plan.steps:
        key = (step.action.value, nouns[step.kind.value])
        count, places = expected.get(key, (0, set()))
        expected[key] = (count + 1, places | {step.database})
    assert summary_counts(markdown) == {key: (count, len(places))
                                        for key, (count, places) in expected.items()}
    assert f"**Plan: {plan.counts()['create']:,} to create, {plan.counts()['update']:,} " \
           f"to update, {plan.counts()['delete']:,} to delete, in 10,000 databases.**" in markdown
    assert "full plan: run `couchsync plan --format json`" in markdown
    # The same change in every database is one block, shown first (apply order).
    assert "~ design:app in 10,000 databases" in markdown
    assert "| … and 9,980 more databases | | | |" in markdown
    saved = render_markdown(plan.view(), full_plan="plan.json")
    assert len(saved) < 65_536 and "the full plan is saved in `plan.json`" in saved


def test_a_markdown_plan_within_budget_is_not_summarised() -> None:
    markdown = render_markdown(fleet_plan(3).view())
    assert "too long" not in markdown and "| Change |" not in markdown
    assert "| `userdb-00002` | 1 | 1 | 0 |" in markdown


def rebuild_step(database: str, documents: int) -> Step:
    step = design_update(MAP_BEFORE, MAP_AFTER)
    step.database = database
    step.rebuild = {"documents": documents, "index_bytes": None, "staged": False}
    return step


def test_counts_are_singular_for_one() -> None:
    text = render(rebuild_step("app", 1))
    assert "# builds an index over 1 document; in place" in text
    markdown = render_markdown(Plan([rebuild_step("app", 1)]).to_dict(), fold_over=0)
    assert "<summary>1 change</summary>" in markdown
    creates = [Step(Action.CREATE, StepKind.DOCUMENT, "a", f"d{i}", after={"n": i})
               for i in range(3)]
    assert "… and 1 more change, not shown" in render_markdown(
        Plan(creates).to_dict(), detail_limit=2)
    listed = render(Step(Action.CREATE, StepKind.DOCUMENT, "a", "d",
                         after={f"f{i}": i for i in range(9)}))
    assert "        … (1 more field)" in listed


def test_counts_in_apply_errors_are_singular_for_one() -> None:
    from couchsync.apply import ApplyError, StepResult
    step = Step(Action.CREATE, StepKind.DOCUMENT, "a", "d", after={})
    assert str(ApplyError([StepResult(step, ok=False, error="forbidden")])).startswith(
        "apply failed for 1 of 1 step:")


def test_no_index_build_note_for_an_empty_database() -> None:
    assert "builds an index" not in render(rebuild_step("app", 0))
    empty, full = rebuild_step("a", 0), rebuild_step("b", 5)
    text = render(empty, full)
    assert "~ design:app in 2 databases" in text
    assert "# builds an index in the 1 of these 2 databases that hold documents" in text
    assert "builds an index" not in render(empty, rebuild_step("c", 0))


def test_steps_are_listed_in_the_order_apply_runs_them() -> None:
    index = Step(Action.CREATE, StepKind.INDEX, "app", "by-x",
                 after={"fields": [{"x": "asc"}], "type": "json"})
    replace = Step(Action.REPLACE, StepKind.INDEX, "app", "by-y",
                   before={"fields": [{"y": "asc"}]}, after={"fields": [{"y": "desc"}]})
    validation = Step(Action.UPDATE, StepKind.DESIGN_DOC, "app", "_design/rules",
                      before={"validate_doc_update": "a"}, after={"validate_doc_update": "b"})
    staged = rebuild_step("app", 10)
    assert staged.rebuild is not None
    staged.rebuild["staged"] = True
    document = Step(Action.CREATE, StepKind.DOCUMENT, "app", "d", after={})
    database = Step(Action.CREATE, StepKind.DATABASE, "app", after={})
    other = Step(Action.CREATE, StepKind.DOCUMENT, "zzz", "e", after={})

    def order(*steps: Step) -> list[str]:
        return [line.split()[1] for line in render(*steps).splitlines()
                if line[:3].strip() in ("+", "~", "-", "-/+")]

    # As the planner lists them (indexes, design docs, documents) and apply runs them:
    # database, a validate_doc_update before the indexes, index deletes then creates,
    # documents, staged builds last.
    assert order(database, staged, index, replace, validation, document, other) == [
        "db:app", "db:app/design:rules", "db:app/index:by-y", "db:app/index:by-x",
        "db:app/doc:d", "db:app/design:app", "db:zzz/doc:e"]
    plain = Step(Action.UPDATE, StepKind.DESIGN_DOC, "app", "_design/views",
                 before={"views": {}}, after={"views": {"v": {"map": "m"}}})
    # A design doc without a validate_doc_update goes with the documents.
    assert order(plain, index, document) == [
        "db:app/index:by-x", "db:app/design:views", "db:app/doc:d"]


def test_databases_are_listed_in_the_order_apply_runs_them() -> None:
    """The node config first, then the ordinary databases in plan order, then _users,
    then _replicator (a replication's source and target exist before its job)."""
    replication = Step(Action.CREATE, StepKind.DOCUMENT, "_replicator", "copy",
                       after={"source": "http://h/a", "target": "http://h/b"})
    user = Step(Action.CREATE, StepKind.DOCUMENT, "_users", "org.couchdb.user:app",
                after={"name": "app", "type": "user", "roles": []})
    config = Step(Action.CREATE, StepKind.CONFIG, "_config", "couch_peruser/enable",
                  after={"node1": "true"})
    first = Step(Action.CREATE, StepKind.DATABASE, "b-first", after={"q": 1})
    second = Step(Action.CREATE, StepKind.DATABASE, "a-second", after={"q": 2})
    lines = render(replication, user, first, config, second).splitlines()
    assert [line.split()[1] for line in lines if line.startswith("  +")] == [
        "config:couch_peruser/enable", "db:b-first", "db:a-second",
        "db:_users/doc:org.couchdb.user:app", "db:_replicator/doc:copy"]
    markdown = render_markdown(Plan([replication, user, first, config, second]).to_dict())
    headings = [line for line in markdown.splitlines() if line.startswith("#### ")]
    assert headings == ["#### node config (every node)", "#### `db:b-first`",
                        "#### `db:a-second`", "#### `db:_users`", "#### `db:_replicator`"]
