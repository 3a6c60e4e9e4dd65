"""The ``couchsync`` command: a thin layer over the library.

Each command parses its options, makes the library calls, renders the result
and turns the library's errors into one clean ``Error: ...`` line with exit
code 1. Heavy modules (httpx, YAML, jsonschema) are imported inside the
commands that need them, so ``couchsync --help`` and ``validate`` start fast.

Exit codes: 0 success (and, with ``--detailed-exitcode``, no changes),
1 error, 2 changes pending (``plan --detailed-exitcode``).
"""

from __future__ import annotations

import contextlib
import enum
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TextIO

import typer

from couchsync._parallel import DEFAULT_PARALLEL
from couchsync._words import counted

if TYPE_CHECKING:
    from couchsync.client import Client
    from couchsync.lock import LockReader
    from couchsync.manifest import DatabaseNames, DesiredState
    from couchsync.plan import Plan
    from couchsync.saved_plan import ReadVariables, SavedPlan


app = typer.Typer(
    name="couchsync",
    help="Keep CouchDB servers in the state your YAML manifests declare.",
    no_args_is_help=True,
    # --install-completion / --show-completion: the shell asks this same command, whose
    # heavy imports are all inside the commands, so completing costs a start-up (~0.2 s).
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

def _show_version(value: bool) -> None:
    if value:
        from couchsync._version import __version__

        typer.echo(f"couchsync {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True,
        help="Print couchsync's version and exit.")] = False,
) -> None:
    """Keep CouchDB servers in the state your YAML manifests declare."""
    from couchsync.manifest import show_warnings_on_stderr

    show_warnings_on_stderr()


Paths = Annotated[
    list[Path],
    typer.Argument(help="Manifest files or directories (every *.yaml/*.yml below, sorted).",
                   show_default=False),
]
OptionalPaths = Annotated[
    list[Path] | None,
    typer.Argument(help="Manifest files or directories (every *.yaml/*.yml below, sorted); "
                        "with --plan, those the plan was made from by default.",
                   show_default=False),
]
Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar=["COUCHDB_URL", "COUCH_URL"],
        help="Server URL, credentials may be included (required: no default server).",
        show_default=False,
        show_envvar=True,
    ),
]
User = Annotated[
    str | None,
    typer.Option("--user", envvar="COUCHDB_USER", show_envvar=True, show_default=False,
                 help="User name; the password comes from COUCHDB_PASSWORD or the file "
                      "COUCHDB_PASSWORD_FILE names (a bearer token: COUCHDB_TOKEN[_FILE]), "
                      "never from the command line."),
]
Auth = Annotated[
    str | None,
    typer.Option("--auth", metavar="basic|session", show_default=False,
                 help="basic: credentials with every request; session: one login "
                      "(_session), then a cookie, renewed when it expires "
                      "\\[default: COUCHDB_AUTH, else basic]."),
]
CACert = Annotated[
    Path | None,
    typer.Option("--cacert", metavar="FILE", show_default=False,
                 help="CA bundle to trust for an https:// server \\[default: COUCHDB_CACERT, "
                      "else the system's]."),
]
Cert = Annotated[
    Path | None,
    typer.Option("--cert", metavar="FILE", show_default=False,
                 help="Client certificate (PEM) to present; its key too, unless --key."),
]
Key = Annotated[
    Path | None,
    typer.Option("--key", metavar="FILE", show_default=False,
                 help="Private key of the --cert client certificate."),
]
Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", help="Tell retries, logins and the proxy used, "
                                               "on stderr; plans also list the ignored "
                                               "fields of seed documents.")
]
Format = Annotated[
    str, typer.Option("--format", help="Output format: text or json.", case_sensitive=False)
]
PlanFormat = Annotated[
    str, typer.Option("--format", case_sensitive=False,
                      help="Output format: text, json, or markdown (a pull-request comment).")
]
Only = Annotated[
    list[str] | None,
    typer.Option("--only", help="Limit to a database, a pattern of databases ('userdb-*') or "
                 "one document (DB/DOCID). Repeatable.", show_default=False),
]
Vars = Annotated[
    list[str] | None,
    typer.Option("--var", metavar="KEY=VALUE", show_default=False,
                 help="A value for ${KEY} in the manifests, before the environment's. "
                      "Repeatable."),
]
VarFiles = Annotated[
    list[Path] | None,
    typer.Option("--var-file", metavar="FILE", show_default=False,
                 help="Values for ${KEY}: a YAML mapping (.yaml, .yml, .json) or KEY=VALUE "
                      "lines (.env). Repeatable; a later file wins, --var wins over files."),
]
DbPrefix = Annotated[
    str, typer.Option("--db-prefix", metavar="TEXT", show_default=False,
                      help="Put TEXT before every database name the manifests declare "
                           "(patterns and --only too): --db-prefix pr-123- plans "
                           "pr-123-orders for orders.")
]
DbSuffix = Annotated[
    str, typer.Option("--db-suffix", metavar="TEXT", show_default=False,
                      help="Put TEXT after every database name the manifests declare.")
]
Parallel = Annotated[
    int, typer.Option("--parallel", min=1, max=64, metavar="N",
                      help="Databases read and written at once.")
]


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def _clean_errors() -> Iterator[None]:
    """Report library errors as one clean line each (never a traceback), exit 1."""
    from couchsync.errors import CouchsyncError
    from couchsync.manifest import ManifestError

    try:
        yield
    except ManifestError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        count = len(exc.problems)
        _fail(f"{counted(count, 'problem')} in manifests")
    except typer.Exit:
        raise
    except Exception as exc:
        # couchsync's own errors (CouchsyncError; the client core's CouchError: server,
        # network) are meant for users and already mask passwords; anything else is a bug
        # and keeps its traceback.
        if isinstance(exc, CouchsyncError) or _is_client_error(exc):
            _fail(str(exc))
        raise


def _is_client_error(exc: Exception) -> bool:
    """Whether ``exc`` is a ``CouchError``, without importing the client core (and httpx)
    in a command that never used it: then it cannot have raised one."""
    client = sys.modules.get("couchsync.client")
    return client is not None and isinstance(exc, client.CouchError)


def _check_format(fmt: str, allowed: tuple[str, ...] = ("text", "json")) -> str:
    fmt = fmt.lower()
    if fmt not in allowed:
        _fail(f"unknown --format {fmt!r}: use {', '.join(allowed[:-1])} or {allowed[-1]}")
    return fmt


@dataclass(frozen=True)
class _Connection:
    """The connection options every command that talks to a server takes."""

    url: str | None = None
    user: str | None = None
    auth: str | None = None
    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    verbose: bool = False


def _client(conn: _Connection, parallel: int = 1) -> Client:
    from couchsync._connect import open_client

    # A bad URL or setting raises a couchsync error whose message never repeats a
    # secret: _clean_errors() reports it. Connections: each database worker may have a
    # batch in flight beside its own request, and the lock's heartbeat needs one, so
    # none waits for the pool.
    return open_client(conn.url, user=conn.user, auth_mode=conn.auth, cacert=conn.cacert,
                       cert=conn.cert, key=conn.key, verbose=conn.verbose,
                       max_connections=max(16, 2 * parallel + 2))


def _color(stream: TextIO) -> bool:
    """ANSI colors only on a terminal, and never with ``NO_COLOR`` set."""
    return stream.isatty() and "NO_COLOR" not in os.environ


def _environ(assignments: list[str] | None, files: list[Path] | None) -> Mapping[str, str]:
    """What ``${KEY}`` reads: ``--var``, then ``--var-file``, then the environment."""
    from couchsync.manifest import variables

    return variables(assignments or [], files or [])


def _given(assignments: list[str] | None, files: list[Path] | None) -> Mapping[str, str]:
    """``--var`` and ``--var-file`` alone, without the environment."""
    from couchsync.manifest import variables

    return variables(assignments or [], files or [], environ={})


def _names(prefix: str, suffix: str, client: Client) -> DatabaseNames:
    from couchsync.manifest import DatabaseNames

    try:  # the server's URL: replication endpoints on it are mapped too
        return DatabaseNames(prefix, suffix, client.url)
    except ValueError as exc:
        _fail(str(exc))


def _load(paths: list[Path], environ: Mapping[str, str]) -> DesiredState:
    from couchsync.manifest import load_manifests

    return load_manifests(paths, environ=environ)


def _plan(client: Client, paths: list[Path], only: list[str] | None, parallel: int,
          design_deploy: DesignDeployMode | None, environ: Mapping[str, str],
          names: DatabaseNames, wait: float | None = None
          ) -> tuple[DesiredState, Plan, LockReader]:
    """Load and plan; the apply locks are read before the databases (see couchsync.lock),
    and with ``wait`` (apply) waited for up to that long, or refused, before planning."""
    from couchsync.lock import LockReader
    from couchsync.read import load_and_plan

    locks = LockReader(client, wait=wait,
                       on_wait=lambda text: typer.echo(f"Note: {text}", err=True))
    with _progress("Planning") as bar:
        desired, plan = load_and_plan(
            client, paths, only=only, before_read=locks, parallel=parallel,
            on_database=bar.databases, environ=environ, names=names,
            design_deploy=None if design_deploy is None else design_deploy.value)
    _warn_public(desired, plan)
    return desired, plan, locks


def _warn_public(desired: DesiredState, plan: Plan) -> None:
    """Loudly, before the plan is shown or applied: databases open to anyone."""
    from couchsync.plan import public_warnings

    for line in public_warnings(desired, plan):
        typer.echo(f"WARNING: {line}", err=True)


def _unread(plan: Plan) -> str | None:
    """The databases that could not be read, one per line (at most 20), or None."""
    if not plan.errors:
        return None
    lines = [f"could not read {counted(len(plan.errors), 'database')}; nothing was planned for "
             f"{'them' if len(plan.errors) != 1 else 'it'}:"]
    lines += [f"  {name}: {reason}" for name, reason in list(plan.errors.items())[:20]]
    if len(plan.errors) > 20:
        lines.append(f"  … and {len(plan.errors) - 20:,} more (--format json lists every one)")
    return "\n".join(lines)


def _tell_locks(locks: LockReader) -> None:
    """A note on stderr for each database another apply holds (plan never takes a lock)."""
    if locks.error is not None:  # e.g. a user who may read the databases but not the locks
        typer.echo(f"Note: could not read the apply locks: {locks.error}", err=True)
        return
    held = locks.held()
    for name in sorted(held)[:10]:
        typer.echo(f"Note: {name} is locked by an apply: {held[name].describe()}; "
                   "this plan may be out of date when it ends.", err=True)
    if len(held) > 10:
        typer.echo(f"Note: … and {len(held) - 10:,} more databases locked.", err=True)


def _show(plan: Plan, fmt: str, list_databases: bool = False, *,
          verbose: bool = False, saved: Path | None = None) -> None:
    """Print ``plan``; ``verbose``: text and markdown also list what was ignored (JSON
    always carries it); ``saved``: where the plan was saved (a markdown plan too long
    for a comment points there)."""
    from couchsync.plan import render_ignored, render_json, render_markdown, render_text

    if fmt == "json":
        typer.echo(render_json(plan))
    elif fmt == "markdown":
        typer.echo(render_markdown(plan.view(), full_plan=None if saved is None else str(saved)),
                   nl=False)
    else:
        typer.echo(render_text(plan.view(), color=_color(sys.stdout),
                               list_databases=list_databases))
    if verbose and fmt != "json" and (ignored := render_ignored(
            plan.view(), markdown=fmt == "markdown")):
        typer.echo(f"\n{ignored}")


@app.command()
def validate(paths: Paths, var: Vars = None, var_file: VarFiles = None) -> None:
    """Check manifests without contacting any server.

    Example: couchsync validate manifests/
    """
    from couchsync.manifest import summarize

    with _clean_errors():
        desired = _load(paths, _environ(var, var_file))
        typer.echo(f"OK: {summarize(desired)}")


@app.command()
def schema() -> None:
    """Print the manifest JSON Schema (for editors and other tools).

    Example: couchsync schema > manifest.schema.json
    """
    from couchsync.manifest import schema_text

    typer.echo(schema_text())


@app.command()
def plan(
    paths: Paths,
    url: Url = None,
    user: User = None,
    auth: Auth = None,
    cacert: CACert = None,
    cert: Cert = None,
    key: Key = None,
    verbose: Verbose = False,
    fmt: PlanFormat = "text",
    design_deploy: DesignDeploy = None,
    var: Vars = None,
    var_file: VarFiles = None,
    db_prefix: DbPrefix = "",
    db_suffix: DbSuffix = "",
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 2 when there are changes.")
    ] = False,
    only: Only = None,
    parallel: Parallel = DEFAULT_PARALLEL,
    list_databases: Annotated[
        bool, typer.Option("--list-databases",
                           help="Name every database a change shown once is made in.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", metavar="FILE", show_default=False,
                                  help="Also save the plan to FILE, for apply --plan FILE.")
    ] = None,
) -> None:
    """Show what apply would change on the server; writes nothing (but --out FILE).

    Example: couchsync plan manifests/ --url http://localhost:5984
    """
    fmt = _check_format(fmt, ("text", "json", "markdown"))
    from couchsync.saved_plan import ReadVariables

    with _clean_errors():
        environ = ReadVariables(_environ(var, var_file))  # a saved plan keeps what was read
        with _client(_Connection(url, user, auth, cacert, cert, key, verbose),
                     parallel) as client:
            desired, result, locks = _plan(client, paths, only, parallel, design_deploy,
                                           environ, _names(db_prefix, db_suffix, client))
            _tell_locks(locks)
            if out is not None:
                settings = {"only": only, "db_prefix": db_prefix, "db_suffix": db_suffix,
                            "design_deploy": design_deploy and design_deploy.value}
                _save_plan(out, result, desired, client, paths, settings, environ)
        _show(result, fmt, list_databases, verbose=verbose, saved=out)
        if fmt == "text" and result.record_updates():
            entries = counted(result.record_updates(), "ownership-record entry",
                              "ownership-record entries")
            typer.echo(f"\nApply will also settle {entries}: documents that hold what the "
                       "manifests say (left pending by an interrupted apply, or their "
                       "ignored fields edited).")
        if (unread := _unread(result)) is not None:
            _fail(unread)
    if detailed_exitcode and not result.is_empty:
        raise typer.Exit(2)


def _server(client: Client) -> tuple[str, str | None]:
    """The server's URL (password masked) and ``uuid`` (None when it tells none)."""
    uuid = client.server.info().get("uuid")
    return client.url, uuid if isinstance(uuid, str) else None


def _save_plan(out: Path, plan: Plan, desired: DesiredState, client: Client,
               paths: list[Path], settings: dict[str, Any], environ: ReadVariables) -> None:
    """Write the saved plan whole or not at all (a new file renamed over ``out``)."""
    from couchsync.saved_plan import SavedPlan

    masked, uuid = _server(client)
    text = SavedPlan.of(plan, desired, server_url=masked, server_uuid=uuid,
                        paths=[str(path) for path in paths], settings=settings,
                        read=environ.read).to_json(environ)
    partial = out.with_name(out.name + ".partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        _fail(f"cannot write the plan to {out}: {exc.strerror or exc}")
    typer.echo(f"Saved the plan to {out}: apply it with couchsync apply --plan {out}",
               err=True)


def _read_saved(path: Path) -> SavedPlan:
    from couchsync.saved_plan import SavedPlan

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read the plan {path}: "
              f"{getattr(exc, 'strerror', None) or exc}")
    return SavedPlan.from_json(text, str(path))


def _saved_settings(saved: SavedPlan, given: dict[str, Any]) -> dict[str, Any]:
    """The saved plan's settings; a setting given again must be the same."""
    settings = dict(saved.settings)
    for name, value in given.items():
        if value not in (None, "", []) and value != settings.get(name):
            _fail(f"--{name.replace('_', '-')} differs from the saved plan's "
                  f"({settings.get(name)!r}): a saved plan is applied as it was made")
    return settings


def _check_saved(saved: SavedPlan, fresh: Plan, desired: DesiredState,
                 client: Client) -> None:
    masked, uuid = _server(client)
    refusal = saved.refusal(fresh, desired, server_url=masked, server_uuid=uuid)
    if refusal is not None:
        _fail(f"refusing the saved plan: {refusal}")


class DesignDeployMode(str, enum.Enum):
    """``--design-deploy`` values: a database's ``design_deploy`` setting."""

    in_place = "in_place"
    staged = "staged"


DesignDeploy = Annotated[
    DesignDeployMode | None,
    typer.Option("--design-deploy", case_sensitive=False, show_default=False,
                 help="Roll out index-rebuilding design doc and index changes in_place or "
                      "staged (built under a staging id, then swapped in: queries never "
                      "wait), for every database of this run \\[default: each database's "
                      "design_deploy, in_place unless set].")
]
WaitTimeout = Annotated[
    float | None,
    typer.Option("--wait-timeout", min=0, metavar="SECONDS", show_default=False,
                 help="Wait at most this long for each staged build; then leave the live "
                      "design doc as it was and exit 1 \\[default: as long as it takes].")
]


LockTimeout = Annotated[
    float, typer.Option("--lock-timeout", min=0, metavar="SECONDS",
                        help="Wait this long for another apply's lock on a database "
                             "\\[default: 0, fail at once].", show_default=False)
]
LockTTL = Annotated[
    float, typer.Option("--lock-ttl", min=5, metavar="SECONDS",
                        help="A lock not renewed for this long (its apply was killed) may be "
                             "taken over.")
]


@app.command()
def apply(
    paths: OptionalPaths = None,
    url: Url = None,
    user: User = None,
    auth: Auth = None,
    cacert: CACert = None,
    cert: Cert = None,
    key: Key = None,
    verbose: Verbose = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    fmt: Format = "text",
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=10000, help="Documents per _bulk_docs.")
    ] = 1000,
    only: Only = None,
    lock_timeout: LockTimeout = 0.0,
    lock_ttl: LockTTL = 600.0,
    parallel: Parallel = DEFAULT_PARALLEL,
    design_deploy: DesignDeploy = None,
    wait_timeout: WaitTimeout = None,
    var: Vars = None,
    var_file: VarFiles = None,
    db_prefix: DbPrefix = "",
    db_suffix: DbSuffix = "",
    wait_for_server: Annotated[
        float, typer.Option("--wait-for-server", min=0, metavar="SECONDS",
                            help="Wait this long for the server to answer /_up (a server "
                                 "still starting) before planning \\[default: 0, at once].",
                            show_default=False)
    ] = 0.0,
    saved_plan: Annotated[
        Path | None, typer.Option("--plan", metavar="FILE", show_default=False,
                                  help="Apply exactly the plan that plan --out FILE saved, "
                                       "without asking; refused, with nothing written, if "
                                       "the server, the manifests or their variables moved "
                                       "since.")
    ] = None,
) -> None:
    """Make the server match the manifests (shows the plan and asks first).

    Holds a lock on every database it covers while it writes: a second apply
    over the same databases fails (or waits, --lock-timeout) naming the holder.

    Example: couchsync apply manifests/ --yes
    """
    from couchsync.apply import ApplyError, ApplyInterrupted, ApplyResult, apply_plan
    from couchsync.lock import LockSet
    from couchsync.read import plan_server

    fmt = _check_format(fmt)
    with _clean_errors():
        saved = None if saved_plan is None else _read_saved(saved_plan)
        if saved is not None:
            settings = _saved_settings(saved, {
                "only": only, "db_prefix": db_prefix, "db_suffix": db_suffix,
                "design_deploy": design_deploy and design_deploy.value})
            only, db_prefix, db_suffix = (settings.get("only"), settings.get("db_prefix", ""),
                                          settings.get("db_suffix", ""))
            deploy = settings.get("design_deploy")
            design_deploy = None if deploy is None else DesignDeployMode(deploy)
            paths = paths or [Path(path) for path in saved.paths]
            yes = True  # the saved plan was reviewed: it is applied only if unchanged
        elif not paths:
            _fail("give the manifests to apply (PATH...), or a saved plan (--plan FILE)")
        with _client(_Connection(url, user, auth, cacert, cert, key, verbose),
                     parallel) as client:
            if wait_for_server:
                _wait_for_server(client, wait_for_server)
            environ = _environ(var, var_file) if saved is None else saved.environ(
                _given(var, var_file), os.environ)  # the plan's variables, secrets anew
            desired, changes, locks = _plan(client, paths, only, parallel, design_deploy,
                                            environ, _names(db_prefix, db_suffix, client),
                                            wait=lock_timeout)
            if saved is not None:
                _check_saved(saved, changes, desired, client)
            unread = _unread(changes)
            if changes.is_empty and not changes.record_updates():
                if fmt == "json":
                    typer.echo(ApplyResult().to_json(changes))
                else:
                    _show(changes, fmt, verbose=verbose)  # "No changes. ..."
                if unread is not None:
                    _fail(unread)
                return
            if fmt == "text" and not changes.is_empty:
                _show(changes, fmt, verbose=verbose)
            if not yes and not changes.is_empty:
                _confirm(changes, show=fmt == "json")
            lockset = LockSet(client, changes.databases(), locks.result(),
                              ttl=lock_ttl, on_notice=lambda text: typer.echo(f"Note: {text}",
                                                                              err=True))
            try:
                with lockset:  # released on the way out, whatever happens
                    lockset.acquire(lock_timeout)
                    if lockset.stale:  # another apply ran since the plan was read: again
                        shown = changes
                        changes = plan_server(client, desired, only=changes.databases(),
                                              parallel=parallel)
                        unread = _unread(changes)
                        if saved is not None:
                            _check_saved(saved, changes, desired, client)
                        if changes.to_dict() != shown.to_dict():
                            _replanned(changes, fmt, yes)
                    with _progress("Applying") as bar:
                        result = apply_plan(client, changes, desired, batch_size=batch_size,
                                            on_progress=bar.steps, check_lock=lockset.check,
                                            parallel=parallel, on_database=bar.databases,
                                            wait_timeout=wait_timeout, on_build=bar.build)
            except (ApplyError, ApplyInterrupted) as exc:
                if fmt == "json":  # stdout holds the report either way; reasons go below
                    typer.echo(exc.result.to_json(changes))
                for warning in exc.result.warnings:
                    typer.echo(f"Warning: {warning}", err=True)
                if isinstance(exc, ApplyInterrupted) and lockset.unreleased:
                    exc.notes.append(_unreleased(lockset.unreleased, lock_ttl))
                elif lockset.unreleased:
                    typer.echo(f"Note: {_unreleased(lockset.unreleased, lock_ttl)}", err=True)
                _fail(str(exc))
            except KeyboardInterrupt:
                _fail("apply interrupted: what was written stays, and the ownership records "
                      "list it; design docs being staged are as they were (their staging "
                      "copies go on building). Run the same apply again to finish.", code=130)
        for warning in result.warnings:
            typer.echo(f"Warning: {warning}", err=True)
        if lockset.unreleased:
            typer.echo(f"Note: {_unreleased(lockset.unreleased, lock_ttl)}", err=True)
        if fmt == "json":
            typer.echo(result.to_json(changes))
        else:
            if result.confirmed:
                settled = counted(result.confirmed, "entry", "entries")
                typer.echo(f"Ownership records: {settled} settled (documents that hold "
                           "what the manifests say).")
            for line in result.staged:
                typer.echo(f"Staged: {line}")
            if not changes.is_empty:
                typer.echo(result.summary())
        if unread is not None:
            _fail(unread)


def _wait_for_server(client: Client, seconds: float) -> None:
    """Poll ``/_up`` until the server is up, at most ``seconds``; fail naming the wait."""
    deadline = time.monotonic() + seconds
    while not client.server.is_up():
        if time.monotonic() >= deadline:
            _fail(f"the server at {client.url} was not up after {seconds:g} s "
                  "(--wait-for-server): /_up did not answer ok")
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def _unreleased(databases: list[str], ttl: float) -> str:
    return (f"Its lock could not be freed: the next apply takes it over after {ttl:.0f} s, "
            "or run: couchsync force-unlock " + " ".join(databases[:3])
            + (f" … ({len(databases):,} databases; a pattern such as 'tenant-*' names many)"
               if len(databases) > 3 else ""))


def _replanned(changes: Plan, fmt: str, yes: bool) -> None:
    """The plan changed while waiting for the lock: show the new one, ask again."""
    typer.echo("\nAnother apply changed these databases since the plan above was made. "
               "The plan is now:\n", err=True)
    if fmt == "text":
        _show(changes, fmt)
    if not yes and not changes.is_empty:
        _confirm(changes, show=fmt == "json")


def _confirm(changes: Plan, *, show: bool) -> None:
    """Ask on the terminal; ``show``: print the plan there first (stdout is kept for JSON).

    The question goes to stderr, so that it is seen even when stdout is redirected.
    """
    from couchsync.plan import render_text

    if not sys.stdin.isatty():
        _fail("refusing to apply without confirmation: no terminal to ask on; pass --yes")
    if show:
        typer.echo(render_text(changes.view(), color=_color(sys.stderr)), err=True)
    typer.echo("\nDo you want to apply these changes? Only 'yes' will be accepted.", err=True)
    answer = typer.prompt("Enter a value", default="", show_default=False, err=True)
    if answer.strip() != "yes":
        _fail("apply cancelled")


class _Bar:
    """Progress callbacks; do nothing unless ``_progress`` shows a bar."""

    def steps(self, done: int, total: int) -> None:
        """Steps done of total (an apply of one database)."""

    def databases(self, done: int, total: int, failed: int) -> None:
        """Databases done of total, and how many failed (fleets)."""

    def build(self, address: str, done: int, total: int) -> None:
        """A staged build: changes indexed of total."""


@contextlib.contextmanager
def _progress(verb: str) -> Iterator[_Bar]:
    """A progress bar on stderr when it is a terminal: databases done (with failures
    and rate) when there are several, else steps. Without a terminal, no output."""
    if not sys.stderr.isatty():
        yield _Bar()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    # On stderr: stdout carries the plan and the report (possibly JSON for a pipe).
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[detail]}"), transient=True,
                  console=Console(stderr=True)) as progress:
        task = progress.add_task(verb, total=None, detail="")
        started = time.monotonic()

        class Shown(_Bar):
            fleet = False

            def steps(self, done: int, total: int) -> None:
                if not self.fleet:
                    progress.update(task, completed=done, total=total, detail="steps")

            def databases(self, done: int, total: int, failed: int) -> None:
                if total > 1:
                    self.fleet = True
                    rate = done / max(time.monotonic() - started, 1e-3)
                    detail = f"databases · {failed:,} failed · {rate:,.0f}/s"
                    progress.update(task, completed=done, total=total, detail=detail)

            def build(self, address: str, done: int, total: int) -> None:
                if not self.fleet:
                    progress.update(task, completed=done, total=total,
                                    detail=f"changes indexed · {address} (staged)")

        yield Shown()


@app.command("force-unlock")
def force_unlock(
    databases: Annotated[list[str], typer.Argument(
        help="Databases whose apply lock to free; a pattern ('tenant-*') frees every "
             "matching one.", show_default=False)],
    url: Url = None,
    user: User = None,
    auth: Auth = None,
    cacert: CACert = None,
    cert: Cert = None,
    key: Key = None,
    verbose: Verbose = False,
) -> None:
    """Free apply locks left by a process that is gone (it must really be gone).

    Example: couchsync force-unlock orders users
    """
    from couchsync.lock import force_unlock as free

    with _clean_errors(), _client(_Connection(url, user, auth, cacert, cert, key,
                                                   verbose)) as client:
        for name, holder in free(client, databases).items():
            if holder is None:
                typer.echo(f"{name}: not locked")
            else:
                typer.echo(f"{name}: lock freed (was held by {holder.describe()})")


@app.command()
def export(
    db: Annotated[list[str] | None,
                  typer.Option("--db", help="Database to export, or a pattern ('userdb-*'): "
                               "what all its databases share, once, as a pattern entry "
                               "(the differences are named on stderr). Repeatable.")] = None,
    url: Url = None,
    user: User = None,
    auth: Auth = None,
    cacert: CACert = None,
    cert: Cert = None,
    key: Key = None,
    verbose: Verbose = False,
    with_docs: Annotated[
        bool, typer.Option("--with-docs", help="Include the documents (without _rev).")
    ] = False,
    users: Annotated[
        bool, typer.Option("--users", help="Export every user of _users (never a password).")
    ] = False,
    replications: Annotated[
        bool, typer.Option("--replications",
                           help="Export every replication of _replicator (credentials as "
                                "${VAR}, named on stderr).")
    ] = False,
    config: Annotated[
        list[str] | None,
        typer.Option("--config", metavar="SECTION", show_default=False,
                     help="Export a config section as the cluster's nodes hold it "
                          "(repeatable; not admins).")
    ] = None,
    var: Annotated[
        list[str] | None,
        typer.Option("--var", metavar="KEY=VALUE", show_default=False,
                     help="Write ${KEY} wherever a string value is VALUE (repeatable): "
                          "the manifest then needs --var KEY=VALUE to apply."),
    ] = None,
    var_file: Annotated[
        list[Path] | None,
        typer.Option("--var-file", metavar="FILE", show_default=False,
                     help="As --var, for each variable of FILE (as plan and apply read it)."),
    ] = None,
    skip_unsupported: Annotated[
        bool, typer.Option("--skip-unsupported",
                           help="Export what a manifest can hold and leave out the rest "
                                "(named on stderr; without this option export then fails).")
    ] = False,
) -> None:
    """Write the live state of databases and server sections as a manifest (YAML on
    stdout; notes, such as the variables it needs, on stderr).

    Example: couchsync export --db users --with-docs > manifests/users.yaml
    """
    from couchsync.export import export_manifest
    from couchsync.manifest import variables

    with _clean_errors():
        given = dict(variables(var or [], var_file or [], environ={}))
        with _client(_Connection(url, user, auth, cacert, cert, key, verbose)) as client:
            text = export_manifest(client, db or (), with_docs=with_docs, users=users,
                                   replications=replications, config=config or (),
                                   placeholders=given, skip_unsupported=skip_unsupported,
                                   notes=lambda message: typer.echo(message, err=True))
        typer.echo(text, nl=False)


def main() -> None:
    """Console-script entry point."""
    app()
