"""Values mean what they look like (issue 19): YAML 1.2 booleans (``country: NO`` is the
text "NO"), a boolean setting given ``yes`` is a schema error saying why, and a number
that loses its text (``1.10``) is warned about with its place.
"""

from __future__ import annotations

import json

import pytest
from conftest import Collect, Write

from couchsync.export import _dump_yaml
from couchsync.manifest import load_manifests
from couchsync.manifest._yaml import parse_yaml


def _doc(write: Write, body: str, caplog: pytest.LogCaptureFixture) -> dict[str, object]:
    """The seed document of a manifest whose one document's body is ``body``."""
    path = write("m.yaml", "version: 1\ndatabases:\n  orders:\n    documents:\n"
                           "      - _id: cfg\n" + "".join(f"        {line}\n"
                                                        for line in body.splitlines()))
    caplog.set_level("WARNING", logger="couchsync.manifest")
    state = load_manifests([path], environ={"HOME": "/root"})
    body_read: dict[str, object] = state.databases["orders"].documents["cfg"].body
    return body_read


def test_yaml_1_1_booleans_and_numbers_stay_the_text_written(
    write: Write, caplog: pytest.LogCaptureFixture,
) -> None:
    body = _doc(write, "country: NO\nanswers: [yes, no, on, off, y, n, Yes, OFF]\n"
                       "zip: 01234\nduration: 1:20\nbig: 1_000\nflag: true\nlow: FALSE\n"
                       "count: 12\nneg: -3\nhex: 0x1F\nratio: 0.5\nnothing: ~\n", caplog)
    assert body == {"_id": "cfg", "country": "NO",
                    "answers": ["yes", "no", "on", "off", "y", "n", "Yes", "OFF"],
                    "zip": "01234", "duration": "1:20", "big": "1_000", "flag": True,
                    "low": False, "count": 12, "neg": -3, "hex": 31, "ratio": 0.5,
                    "nothing": None}


def test_yes_in_a_boolean_setting_is_an_error_that_says_why(
    write: Write, collect: Collect,
) -> None:
    write("m.yaml", "version: 1\ndatabases:\n  orders:\n    prune: yes\n    partitioned: off\n")
    assert collect("m.yaml") == [
        ("m.yaml", 4, 12, "expected a boolean (true or false), got string 'yes' (only true "
                          "and false are booleans)"),
        ("m.yaml", 5, 18, "expected a boolean (true or false), got string 'off' (only true "
                          "and false are booleans)")]


def test_a_key_like_on_is_a_string_key(write: Write) -> None:
    path = write("m.yaml", "version: 1\ndatabases:\n  orders:\n    documents:\n"
                           "      - {_id: ci, on: push, n: 1}\n")
    assert load_manifests([path], environ={}).databases["orders"].documents["ci"].body == {
        "_id": "ci", "on": "push", "n": 1}


def test_a_number_that_loses_its_text_is_warned_about_at_its_place(
    write: Write, caplog: pytest.LogCaptureFixture,
) -> None:
    body = _doc(write, "version: 1.10\nquoted: '1.10'\nplain: 1.5\nwhole: 3\n"
                       "hex: 0x10\n", caplog)
    assert body["version"] == 1.1 and body["quoted"] == "1.10"
    warnings = [record.getMessage() for record in caplog.records]
    assert warnings == [
        f"{write('m.yaml', '').rsplit('/', 1)[0]}/m.yaml:6:18: 1.10 is read as the number "
        "1.1; quote it ('1.10') to keep the text",
        f"{write('m.yaml', '').rsplit('/', 1)[0]}/m.yaml:10:14: 0x10 is read as the number "
        "16; quote it ('0x10') to keep the text"]


def test_a_json_number_kept_as_text_is_warned_about_with_the_yaml_to_write(
    write: Write, caplog: pytest.LogCaptureFixture,
) -> None:
    # 1e5 is a number to JSON (and YAML 1.2), text to YAML 1.1's rules, which these keep
    # so that export round-trips; a number written with a point and a signed exponent is
    # meant as one and read quietly.
    body = _doc(write, "ratio: 1e5\nsmall: -25E-4\nquoted: '1e5'\nmeant: 1.0e+5\n", caplog)
    assert body == {"_id": "cfg", "ratio": "1e5", "small": "-25E-4", "quoted": "1e5",
                    "meant": 100000.0}
    where = f"{write('m.yaml', '').rsplit('/', 1)[0]}/m.yaml"
    assert [record.getMessage() for record in caplog.records] == [
        f"{where}:6:16: 1e5 is read as the text '1e5', not the number 100000.0: write "
        "1.0e+5 for the number, or quote the text",
        f"{where}:7:16: -25E-4 is read as the text '-25E-4', not the number -0.0025: "
        "write -25.0e-4 for the number, or quote the text"]


@pytest.mark.parametrize("text", ["yes", "NO", "on", "1e3", "-25E-4", "0123", "1:20", "1_000",
                                  "0o17", "1.10", "true", "null", "0x1F", "12", ".5", "-.5",
                                  "y"])
def test_what_export_writes_reads_back_the_same(
    text: str, caplog: pytest.LogCaptureFixture,
) -> None:
    # export dumps with PyYAML (YAML 1.1 quoting rules): every string the 1.2 loader would
    # read as something else must come out quoted, and what looks like a number (1e3)
    # too, so that reading it back warns of nothing.
    caplog.set_level("WARNING", logger="couchsync.manifest")
    data = {"value": text, "values": [text]}
    parsed = parse_yaml(_dump_yaml(data), "export.yaml")
    assert json.dumps(parsed.value) == json.dumps(data)
    assert not caplog.records
