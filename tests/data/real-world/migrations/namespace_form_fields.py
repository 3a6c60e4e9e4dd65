"""cht-core's ``namespace-form-fields`` migration as a couchsync transform: a report's
form fields move from the top of the document into ``fields`` (see README.md)."""

from __future__ import annotations

from typing import Any

#: The fields of each form, as the settings of cht-core's own test declare them
#: (``settings.forms.R.fields``); cht-core read them from its settings document.
FORM_FIELDS = {"R": ("patient_name",)}


def namespace(doc: dict[str, Any]) -> dict[str, Any] | None:
    # `if (doc.fields || !doc.form) return;` with JavaScript's truthiness: {} is true.
    if doc.get("fields") not in (None, False, 0, "") or doc.get("form") in (None, False, 0, ""):
        return None
    form = doc["form"]
    fields = FORM_FIELDS.get(form) if isinstance(form, str) else None
    if fields is None:
        return None
    # `doc.fields[key] = doc[key]; delete doc[key];` an absent key stays absent (JSON
    # leaves `undefined` out).
    doc["fields"] = {key: doc.pop(key) for key in fields if key in doc}
    return doc
