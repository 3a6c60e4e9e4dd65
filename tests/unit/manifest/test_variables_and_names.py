"""``--var`` / ``--var-file`` (``variables``) and ``--db-prefix`` / ``--db-suffix``
(``DatabaseNames``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from couchsync.manifest import DatabaseNames, ManifestError, load_manifests, variables


def problems(exc: pytest.ExceptionInfo[ManifestError]) -> list[str]:
    return [str(problem) for problem in exc.value.problems]


def test_var_wins_over_files_and_files_over_the_environment(tmp_path: Path) -> None:
    first, second = tmp_path / "a.env", tmp_path / "b.yaml"
    first.write_text("A=from-a\nB=from-a\nC=from-a\n")
    second.write_text("B: from-b\nC: 2.50\nD: true\n")
    found = variables(["A=from-var", "A=last-var"], [first, second],
                      environ={"A": "env", "E": "env"})
    assert {key: found[key] for key in "ABCDE"} == {
        "A": "last-var", "B": "from-b", "C": "2.50", "D": "true", "E": "env"}
    assert "Z" not in found and set(found) == set("ABCDE")


def test_env_lines_quotes_comments_and_export(tmp_path: Path) -> None:
    path = tmp_path / "vars.env"
    path.write_text('# a comment\n\nexport PLAIN = spaced value \nSINGLE=\'a "b" \\n\'\n'
                    'DOUBLE="a \\"b\\" \\\\ \\n c"\nEMPTY=\nEQUALS=a=b\n')
    found = variables([], [path], environ={})
    assert dict(found) == {"PLAIN": "spaced value", "SINGLE": 'a "b" \\n',
                           "DOUBLE": 'a "b" \\ \n c', "EMPTY": "", "EQUALS": "a=b"}


def test_bad_assignments_and_lines_are_named_by_place_and_never_show_a_value(
        tmp_path: Path) -> None:
    env, data = tmp_path / "bad.env", tmp_path / "bad.yaml"
    env.write_text("OK=1\nno equals sign\n1ST=x\nQ=\"unclosed s3cret\n")
    data.write_text("LIST: [a]\n'bad name': x\nNULL: ~\nOK: 1\nOK: 2\n")
    with pytest.raises(ManifestError) as exc:
        variables(["=s3cret", "NAME", "GOOD=x"], [env, data, tmp_path / "missing.env"],
                  environ={})
    found = problems(exc)
    assert found == [
        "--var: expected KEY=VALUE with KEY a name (letters, digits, _), got '=…'",
        "--var: expected KEY=VALUE with KEY a name (letters, digits, _), got 'NAME'",
        f"{env}:2:1: expected KEY=VALUE with KEY a name (letters, digits, _)",
        f"{env}:3:1: expected KEY=VALUE with KEY a name (letters, digits, _)",
        f'{env}:4:1: Q: a value opened with " must end with "',
        f"{data}:1:1: LIST: a value must be a string, number or boolean",
        f"{data}:2:1: 'bad name' is not a variable name (letters, digits, _)",
        f"{data}:3:1: NULL: a value must be a string, number or boolean",
        f"{data}:5:1: OK is given twice",
        f"{tmp_path / 'missing.env'}: cannot read the variables file: No such file or "
        "directory",
    ]
    assert not any("s3cret" in text for text in found)


def test_a_yaml_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.yml"
    path.write_text("- A\n")
    with pytest.raises(ManifestError) as exc:
        variables([], [path])
    assert problems(exc) == [
        f"{path}:1:1: a variables file holds a mapping of names to values"]


def test_the_loader_reads_variables_and_names_the_missing_one(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "databases": {"shop": {"documents": [
        {"_id": "cfg", "theme": "${THEME}", "region": "${REGION}"}]}}}))
    desired = load_manifests([manifest], environ=variables(["THEME=dark", "REGION=eu"],
                                                           environ={}))
    assert desired.databases["shop"].documents["cfg"].body["theme"] == "dark"
    with pytest.raises(ManifestError) as exc:
        load_manifests([manifest], environ=variables(["THEME=dark"], environ={}))
    assert problems(exc) == [f"{manifest}:5:15: variable REGION is not set (by --var, "
                             "--var-file or the environment) and has no default"]


def test_database_names_map_declared_names_patterns_and_selectors(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "databases": {
        "orders": {"prune": True}, "tenant-*": {"prune": True}}}))
    names = DatabaseNames("pr-12-", "-x")
    desired = names.apply(load_manifests([manifest], environ={}))
    assert list(desired.databases) == ["pr-12-orders-x"]
    assert names.real("_users") == "_users"  # system databases keep their names
    assert desired.databases["pr-12-orders-x"].name == "pr-12-orders-x"
    assert list(desired.patterns) == ["pr-12-tenant-*-x"]
    assert names.selector("orders/doc/with/slashes") == "pr-12-orders-x/doc/with/slashes"
    assert names.selector("tenant-*") == "pr-12-tenant-*-x"
    assert not DatabaseNames() and DatabaseNames().apply(desired) is desired


@pytest.mark.parametrize(("prefix", "suffix", "message"), [
    ("PR-", "", "--db-prefix 'PR-': a database name may hold only lowercase letters"),
    ("1-", "", "--db-prefix '1-': a database name starts with a lowercase letter"),
    ("", " x", "--db-suffix ' x': a database name may hold only lowercase letters"),
])
def test_database_names_refuse_what_couchdb_would(prefix: str, suffix: str,
                                                  message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        DatabaseNames(prefix, suffix)
