"""couchsync's version, in one place: the package root re-exports it, pyproject reads it
(``[tool.setuptools.dynamic]``), and plans, saved plans and the data-file cache record it."""

__version__ = "0.1.0"
