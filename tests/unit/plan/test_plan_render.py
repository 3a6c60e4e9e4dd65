"""The text renderer, fed with ``Plan.to_dict()`` output."""

from __future__ import annotations

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
    assert "\x1b[32m  +\x1b[0m \x1b[1mdb:users\x1b[0m" in colored
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
    assert lines[3:5] == [
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
