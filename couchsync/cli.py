"""The ``couchsync`` command: each command parses its options, makes the library calls
(``apply``: ``couchsync.operation.apply_manifests``), renders the result and turns the
library's errors into one ``Error: ...`` line. Heavy modules (httpx, YAML, jsonschema)
are imported inside the commands, so ``couchsync --help`` and ``validate`` start fast.

Exit codes: 0 success (and, with ``--detailed-exitcode``, no changes), 1 error,
2 changes pending (``plan --detailed-exitcode``), 130 an apply interrupted.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import gc
import inspect
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, TextIO, get_type_hints

import typer

from couchsync._parallel import DEFAULT_PARALLEL
from couchsync._words import counted
from couchsync.operation import ApplyHooks, Progress
from couchsync.watch import WatchHooks

if TYPE_CHECKING:
    from couchsync.apply import ApplyError, ApplyInterrupted
    from couchsync.client import Client
    from couchsync.lock import LockReader, LockSet
    from couchsync.manifest import Shard
    from couchsync.operation import ApplyOutcome
    from couchsync.plan import Plan


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


@dataclass(frozen=True)
class _Connection:
    """The connection options of every command that talks to a server, declared once
    here; ``@_connects`` gives them to a command as its ``conn``."""

    url: Annotated[str | None, typer.Option(
        "--url", envvar=["COUCHDB_URL", "COUCH_URL"], show_default=False, show_envvar=True,
        help="Server URL, credentials may be included (required: no default server).")] = None
    user: Annotated[str | None, typer.Option(
        "--user", envvar="COUCHDB_USER", show_envvar=True, show_default=False,
        help="User name; the password comes from COUCHDB_PASSWORD or the file "
             "COUCHDB_PASSWORD_FILE names (a bearer token: COUCHDB_TOKEN[_FILE]), "
             "never from the command line.")] = None
    auth: Annotated[str | None, typer.Option(
        "--auth", metavar="basic|session|iam", show_default=False,
        help="basic: credentials with every request; session: one login "
             "(_session), then a cookie, renewed when it expires; iam: IBM Cloud IAM "
             "tokens for the API key in COUCHDB_IAM_API_KEY[_FILE] or CLOUDANT_APIKEY "
             "\\[default: COUCHDB_AUTH, else basic].")] = None
    cacert: Annotated[Path | None, typer.Option(
        "--cacert", metavar="FILE", show_default=False,
        help="CA bundle to trust for an https:// server \\[default: COUCHDB_CACERT, "
             "else the system's].")] = None
    cert: Annotated[Path | None, typer.Option(
        "--cert", metavar="FILE", show_default=False,
        help="Client certificate (PEM) to present; its key too, unless --key.")] = None
    key: Annotated[Path | None, typer.Option(
        "--key", metavar="FILE", show_default=False,
        help="Private key of the --cert client certificate.")] = None
    max_rate: Annotated[int | None, typer.Option(
        "--max-rate", min=1, metavar="N", show_default=False,
        help="Send at most N requests per second, in all \\[default: COUCHDB_MAX_RATE, else "
             "no limit].")] = None
    adaptive: Annotated[bool, typer.Option(
        "--adaptive/--no-adaptive",
        help="Halve the requests in flight when the server answers 429 or 503 or slows down, "
             "and climb back as it recovers.")] = True
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Tell retries, logins, the proxy used and slowing down, on "
                                "stderr; plans also list the ignored fields of seed "
                                "documents.")] = False

    def client(self, parallel: int = 1) -> Client:
        from couchsync._connect import open_client

        # Connections: each database worker may have a batch in flight beside its own
        # request, and the lock's heartbeat needs one, so none waits for the pool.
        return open_client(self.url, user=self.user, auth_mode=self.auth, cacert=self.cacert,
                           cert=self.cert, key=self.key, verbose=self.verbose,
                           max_connections=max(16, 2 * parallel + 2), max_rate=self.max_rate,
                           adaptive=self.adaptive)


def _connects(command: Callable[..., None]) -> Callable[..., None]:
    """Typer's shared options (fastapi/typer#153): ``command``'s signature with its
    ``conn`` parameter replaced by ``_Connection``'s fields, which the call packs again."""
    hints = get_type_hints(_Connection, include_extras=True)
    names = [item.name for item in fields(_Connection)]
    params: list[inspect.Parameter] = []
    for param in inspect.signature(command, eval_str=True).parameters.values():
        params += [param] if param.name != "conn" else [
            inspect.Parameter(item.name, param.kind, default=item.default,
                              annotation=hints[item.name]) for item in fields(_Connection)]

    @functools.wraps(command)
    def parsed(**options: Any) -> None:
        command(conn=_Connection(**{name: options.pop(name) for name in names}), **options)

    parsed.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return parsed


Paths = Annotated[list[Path], typer.Argument(
    help="Manifest files or directories (every *.yaml/*.yml below, sorted).",
    show_default=False)]
OptionalPaths = Annotated[list[Path] | None, typer.Argument(
    help="Manifest files or directories (every *.yaml/*.yml below, sorted); with --plan, "
         "those the plan was made from by default.", show_default=False)]
Format = Annotated[str, typer.Option("--format", help="Output format: text or json.",
                                      case_sensitive=False)]
PlanFormat = Annotated[str, typer.Option(
    "--format", case_sensitive=False,
    help="Output format: text, json, or markdown (a pull-request comment).")]
Only = Annotated[list[str] | None, typer.Option(
    "--only", show_default=False, help="Limit to a database, a pattern of databases "
                                       "('userdb-*') or one document (DB/DOCID). Repeatable.")]
Vars = Annotated[list[str] | None, typer.Option(
    "--var", metavar="KEY=VALUE", show_default=False,
    help="A value for ${KEY} in the manifests, before the environment's. Repeatable.")]
VarFiles = Annotated[list[Path] | None, typer.Option(
    "--var-file", metavar="FILE", show_default=False,
    help="Values for ${KEY}: a YAML mapping (.yaml, .yml, .json) or KEY=VALUE lines (.env). "
         "Repeatable; a later file wins, --var wins over files.")]
DbPrefix = Annotated[str, typer.Option(
    "--db-prefix", metavar="TEXT", show_default=False,
    help="Put TEXT before every database name the manifests declare (patterns and --only "
         "too): --db-prefix pr-123- plans pr-123-orders for orders.")]
DbSuffix = Annotated[str, typer.Option(
    "--db-suffix", metavar="TEXT", show_default=False,
    help="Put TEXT after every database name the manifests declare.")]
Parallel = Annotated[int, typer.Option("--parallel", min=1, max=64, metavar="N",
                                       help="Databases read and written at once.")]
ShardOption = Annotated[str | None, typer.Option(
    "--shard", metavar="K/N", show_default=False,
    help="Only the databases in shard K of N (a stable hash of each name): N runners "
         "converge a fleet together, each with its own locks.")]
Full = Annotated[bool, typer.Option(
    "--full", help="Read every database, also those unchanged since an apply found them "
                   "converged (see 'Incremental plans' in docs/plan-and-apply.md).")]


class DesignDeployMode(str, enum.Enum):
    """``--design-deploy`` values: a database's ``design_deploy`` setting."""

    in_place = "in_place"
    staged = "staged"


DesignDeploy = Annotated[DesignDeployMode | None, typer.Option(
    "--design-deploy", case_sensitive=False, show_default=False,
    help="Roll out index-rebuilding design doc and index changes in_place or staged (built "
         "under a staging id, then swapped in: queries never wait), for every database of "
         "this run \\[default: each database's design_deploy, in_place unless set].")]


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
        _fail(f"{counted(len(exc.problems), 'problem')} in manifests")
    except typer.Exit:
        raise
    except Exception as exc:
        # couchsync's own errors (CouchsyncError; the client core's CouchError: server,
        # network) are meant for users and already mask passwords; anything else is a bug
        # and keeps its traceback. A command that never imported the client core (and
        # httpx) cannot have raised a CouchError.
        client = sys.modules.get("couchsync.client")
        if isinstance(exc, CouchsyncError) or (client and isinstance(exc, client.CouchError)):
            _fail(str(exc))
        raise


def _check_format(fmt: str, allowed: tuple[str, ...] = ("text", "json")) -> str:
    fmt = fmt.lower()
    if fmt not in allowed:
        _fail(f"unknown --format {fmt!r}: use {', '.join(allowed[:-1])} or {allowed[-1]}")
    return fmt


def _shard(text: str | None) -> Shard | None:
    from couchsync.manifest import Shard

    try:
        return None if text is None else Shard.parse(text)
    except ValueError as exc:
        _fail(str(exc))


def _color(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


def _environ(assignments: list[str] | None, files: list[Path] | None,
             environ: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """What ``${KEY}`` reads: ``--var``, ``--var-file``, then ``environ`` (or os.environ)."""
    from couchsync.manifest import variables

    return variables(assignments or [], files or [], environ=environ)


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


class _Terminal(ApplyHooks):
    """The operation's notes, warnings and progress on stderr, its questions asked on the
    terminal; remembers the plan being applied and its locks, for the report."""

    def __init__(self, fmt: str = "text", *, yes: bool = False, verbose: bool = False) -> None:
        self.fmt, self.yes, self.verbose = fmt, yes, verbose
        self.plan: Plan | None = None
        self.locks: LockSet | None = None

    def notice(self, text: str) -> None:
        typer.echo(f"Note: {text}", err=True)

    def warning(self, text: str) -> None:
        typer.echo(f"WARNING: {text}", err=True)

    def confirm(self, plan: Plan) -> bool:
        if self.fmt == "text":
            _show(plan, self.fmt, verbose=self.verbose)
        return self.yes or self._ask(plan)

    def locking(self, plan: Plan, locks: LockSet) -> None:
        self.plan, self.locks = plan, locks

    def replanned(self, plan: Plan) -> bool:
        self.plan = plan
        typer.echo("\nAnother apply changed these databases since the plan above was made. "
                   "The plan is now:\n", err=True)
        if self.fmt == "text":
            _show(plan, self.fmt)
        return self.yes or plan.is_empty or self._ask(plan)

    def _ask(self, plan: Plan) -> bool:
        """Ask on stderr, seen even when stdout is redirected; with ``--format json`` the
        plan is shown there first (stdout is kept for the report)."""
        from couchsync.plan import render_text

        if not sys.stdin.isatty():
            _fail("refusing to apply without confirmation: no terminal to ask on; pass --yes")
        if self.fmt == "json":
            typer.echo(render_text(plan.view(), color=_color(sys.stderr)), err=True)
        return _yes("Do you want to apply these changes?")

    @contextlib.contextmanager
    def progress(self, verb: str) -> Iterator[Progress]:
        """A progress bar on stderr when it is a terminal: databases done (with failures
        and rate) when there are several, else steps. Without a terminal, no output."""
        if not sys.stderr.isatty():
            yield Progress()
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
        from rich.progress import Progress as Bar

        # On stderr: stdout carries the plan and the report (possibly JSON for a pipe).
        with Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                 TextColumn("{task.fields[detail]}"), transient=True,
                 console=Console(stderr=True)) as bar:
            task = bar.add_task(verb, total=None, detail="")
            started = time.monotonic()

            class Shown(Progress):
                fleet = False
                migrating = False  # documents migrated say more than steps or databases

                def steps(self, done: int, total: int) -> None:
                    if not self.fleet:
                        bar.update(task, completed=done, total=total, detail="steps")

                def databases(self, done: int, total: int, failed: int) -> None:
                    if total > 1 and not self.migrating:
                        self.fleet = True
                        rate = done / max(time.monotonic() - started, 1e-3)
                        detail = f"databases · {failed:,} failed · {rate:,.0f}/s"
                        bar.update(task, completed=done, total=total, detail=detail)

                def build(self, address: str, done: int, total: int) -> None:
                    if not self.fleet:
                        bar.update(task, completed=done, total=total,
                                   detail=f"changes indexed · {address} (staged)")

                def documents(self, done: int, total: int, failed: int) -> None:
                    self.fleet = self.migrating = True
                    rate = done / max(time.monotonic() - started, 1e-3)
                    bar.update(task, completed=done, total=total,
                               detail=f"documents migrated · {failed:,} failed · {rate:,.0f}/s")

            yield Shown()


def _yes(question: str) -> bool:
    """Ask ``question`` on the terminal, on stderr: only "yes" counts."""
    typer.echo(f"\n{question} Only 'yes' will be accepted.", err=True)
    answer = typer.prompt("Enter a value", default="", show_default=False, err=True)
    return bool(answer.strip() == "yes")


_INTERRUPTED = ("apply interrupted: what was written stays, and the ownership records list "
                "it; design docs being staged are as they were (their staging copies go on "
                "building). Run the same apply again to finish.")


def _report(done: ApplyOutcome, ui: _Terminal, lock_ttl: float) -> None:
    """What apply prints of an apply that ended: its warnings, then (text) the settled
    ownership records, staged builds, migrations and the summary, or "No changes."."""
    from couchsync.apply import ApplyResult
    from couchsync.lock import unreleased_note

    result = done.result or ApplyResult()  # None: nothing to apply
    for warning in result.warnings:
        typer.echo(f"Warning: {warning}", err=True)
    if done.unreleased:
        ui.notice(unreleased_note(done.unreleased, lock_ttl))
    if ui.fmt == "json":
        typer.echo(result.to_json(done.plan))
    elif done.result is None:
        _show(done.plan, ui.fmt, verbose=ui.verbose)  # "No changes. ..."
    else:
        if result.confirmed:
            settled = counted(result.confirmed, "entry", "entries")
            typer.echo(f"Ownership records: {settled} settled (documents that hold "
                       "what the manifests say).")
        for line in result.staged:
            typer.echo(f"Staged: {line}")
        for line in result.migrated:
            typer.echo(f"Migrated: {line}")
        if not done.plan.is_empty:
            typer.echo(result.summary())


def _report_stop(exc: ApplyError | ApplyInterrupted, ui: _Terminal, lock_ttl: float) -> None:
    """What apply prints of an apply that failed or stopped, before its error."""
    from couchsync.apply import ApplyError
    from couchsync.lock import unreleased_note

    assert ui.plan is not None and ui.locks is not None  # both told before
    if ui.fmt == "json":  # stdout holds the report either way; reasons go below
        typer.echo(exc.result.to_json(ui.plan))
    for warning in exc.result.warnings:
        typer.echo(f"Warning: {warning}", err=True)
    if isinstance(exc, ApplyError) and ui.locks.unreleased:  # else in its text
        ui.notice(unreleased_note(ui.locks.unreleased, lock_ttl))


def _some(names: Sequence[str]) -> str:
    """The first three of ``names``, and how many more."""
    more = f" and {len(names) - 3:,} more" if len(names) > 3 else ""
    return ", ".join(names[:3]) + more


class _Watching(_Terminal, WatchHooks):
    """``apply --watch``: each round's plan and result as apply prints them, each error
    with what to fix; asked once, before the first round (the server not on loopback)."""

    def __init__(self, *, yes: bool, verbose: bool, lock_ttl: float) -> None:
        super().__init__(yes=True, verbose=verbose)  # each round's plan applied unasked
        self.asked_yes, self.lock_ttl = yes, lock_ttl

    def start(self, url: str) -> bool:
        if self.asked_yes:
            return True
        if not sys.stdin.isatty():
            _fail("refusing to watch a server not on loopback without confirmation: no "
                  "terminal to ask on; pass --yes")
        return _yes(f"{url} is not on loopback. Apply every change saved from now on "
                    "to it, without asking?")

    def watching(self, files: Sequence[str]) -> None:
        typer.echo(f"Watching {_some(files)} (Ctrl-C to stop).", err=True)

    def round(self, changed: Sequence[str]) -> None:
        if changed:
            typer.echo(f"\n[{time.strftime('%H:%M:%S')}] Changed: {_some(changed)}")

    def applied(self, outcome: ApplyOutcome) -> None:
        # Its locks are released: a Ctrl-C from now until the next round's writes finds
        # nothing being written (apply's `except KeyboardInterrupt` reads `locks`).
        self.plan = self.locks = None
        _report(outcome, self, self.lock_ttl)
        if (unread := _unread(outcome.plan)) is not None:
            typer.echo(f"Error: {unread}", err=True)

    def failed(self, error: Exception) -> None:
        from couchsync.apply import ApplyError, ApplyInterrupted

        if isinstance(error, (ApplyError, ApplyInterrupted)):
            _report_stop(error, self, self.lock_ttl)
        self.plan = self.locks = None
        with contextlib.suppress(typer.Exit), _clean_errors():  # its lines, as apply's
            raise error
        typer.echo("Waiting for the next change.", err=True)


@app.command()
def validate(paths: Paths, var: Vars = None, var_file: VarFiles = None) -> None:
    """Check manifests without contacting any server.

    Example: couchsync validate manifests/
    """
    from couchsync.manifest import load_manifests, summarize

    with _clean_errors():
        desired = load_manifests(paths, environ=_environ(var, var_file))
        typer.echo(f"OK: {summarize(desired)}")


@app.command()
def schema() -> None:
    """Print the manifest JSON Schema (for editors and other tools).

    Example: couchsync schema > manifest.schema.json
    """
    from couchsync.manifest import schema_text

    typer.echo(schema_text())


@app.command()
@_connects
def plan(
    paths: Paths,
    *,
    conn: _Connection,
    fmt: PlanFormat = "text",
    design_deploy: DesignDeploy = None,
    var: Vars = None,
    var_file: VarFiles = None,
    db_prefix: DbPrefix = "",
    db_suffix: DbSuffix = "",
    detailed_exitcode: Annotated[bool, typer.Option(
        "--detailed-exitcode", help="Exit 2 when there are changes.")] = False,
    only: Only = None,
    parallel: Parallel = DEFAULT_PARALLEL,
    full: Full = False,
    shard: ShardOption = None,
    list_databases: Annotated[bool, typer.Option(
        "--list-databases", help="Name every database a change shown once is made in.")
    ] = False,
    out: Annotated[Path | None, typer.Option(
        "--out", metavar="FILE", show_default=False,
        help="Also save the plan to FILE, for apply --plan FILE.")] = None,
    samples: Annotated[int, typer.Option(
        "--samples", min=0, metavar="N",
        help="Documents shown before and after, per data migration.")] = 3,
    migration_out: Annotated[Path | None, typer.Option(
        "--migration-out", metavar="DIR", show_default=False,
        help="Write every document a data migration would write to "
             "DIR/DATABASE/MIGRATION.jsonl, for review.")] = None,
) -> None:
    """Show what apply would change on the server; writes nothing (but --out FILE).

    Example: couchsync plan manifests/ --url http://localhost:5984
    """
    fmt = _check_format(fmt, ("text", "json", "markdown"))
    from couchsync.operation import plan_manifests
    from couchsync.read import MigrationOptions
    from couchsync.saved_plan import ReadVariables, SavedPlan, server_of

    deploy: Literal["in_place", "staged"] | None = (
        None if design_deploy is None else design_deploy.value)
    with _clean_errors():
        environ = ReadVariables(_environ(var, var_file))  # a saved plan keeps what was read
        with conn.client(parallel) as client:
            desired, result, locks = plan_manifests(
                client, paths, only=only, db_prefix=db_prefix, db_suffix=db_suffix,
                design_deploy=deploy, environ=environ, parallel=parallel, hooks=_Terminal(),
                migrations=MigrationOptions(samples, migration_out), full=full,
                shard=_shard(shard), lazy=out is None)
            _tell_locks(locks)
            if out is not None:
                url, uuid = server_of(client)
                SavedPlan.of(result, desired, server_url=url, server_uuid=uuid,
                             paths=[str(path) for path in paths], read=environ.read,
                             settings={"only": only, "db_prefix": db_prefix,
                                       "db_suffix": db_suffix, "design_deploy": deploy},
                             ).write(out, environ)
                typer.echo(f"Saved the plan to {out}: apply it with couchsync apply --plan "
                           f"{out}", err=True)
        _show(result, fmt, list_databases, verbose=conn.verbose, saved=out)
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


@app.command()
@_connects
def apply(
    paths: OptionalPaths = None,
    *,
    conn: _Connection,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    fmt: Format = "text",
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, max=10000, help="Documents per _bulk_docs.")] = 1000,
    only: Only = None,
    lock_timeout: Annotated[float, typer.Option(
        "--lock-timeout", min=0, metavar="SECONDS", show_default=False,
        help="Wait this long for another apply's lock on a database \\[default: 0, fail at "
             "once].")] = 0.0,
    lock_ttl: Annotated[float, typer.Option(
        "--lock-ttl", min=5, metavar="SECONDS",
        help="A lock not renewed for this long (its apply was killed) may be taken "
             "over.")] = 600.0,
    parallel: Parallel = DEFAULT_PARALLEL,
    full: Full = False,
    shard: ShardOption = None,
    design_deploy: DesignDeploy = None,
    wait_timeout: Annotated[float | None, typer.Option(
        "--wait-timeout", min=0, metavar="SECONDS", show_default=False,
        help="Wait at most this long for each staged build; then leave the live design doc "
             "as it was and exit 1 \\[default: as long as it takes].")] = None,
    var: Vars = None,
    var_file: VarFiles = None,
    db_prefix: DbPrefix = "",
    db_suffix: DbSuffix = "",
    wait_for_server: Annotated[float, typer.Option(
        "--wait-for-server", min=0, metavar="SECONDS", show_default=False,
        help="Wait this long for the server to answer /_up (a server still starting) before "
             "planning \\[default: 0, at once].")] = 0.0,
    saved_plan: Annotated[Path | None, typer.Option(
        "--plan", metavar="FILE", show_default=False,
        help="Apply exactly the plan that plan --out FILE saved, without asking; refused, "
             "with nothing written, if the server, the manifests or their variables moved "
             "since.")] = None,
    watch: Annotated[bool, typer.Option(
        "--watch", help="Apply, then apply again each time a manifest or a file it reads "
                        "is saved, until Ctrl-C; asks first only when the server is not "
                        "on loopback.")] = False,
) -> None:
    """Make the server match the manifests (shows the plan and asks first).

    Holds a lock on every database it covers while it writes: a second apply
    over the same databases fails (or waits, --lock-timeout) naming the holder.

    Example: couchsync apply manifests/ --yes
    """
    from couchsync.apply import ApplyError, ApplyInterrupted
    from couchsync.operation import apply_manifests
    from couchsync.saved_plan import SavedPlan
    from couchsync.watch import watch_manifests

    fmt = _check_format(fmt)
    if watch and (saved_plan is not None or fmt == "json"):
        _fail("--watch applies the manifests each time they are saved and prints each "
              "round as text: it takes neither --plan nor --format json")
    with _clean_errors():
        saved = None if saved_plan is None else SavedPlan.read(saved_plan)
        if saved is None and not paths:
            _fail("give the manifests to apply (PATH...), or a saved plan (--plan FILE)")
        # A saved plan was reviewed: it is applied without asking, only if unchanged.
        ui = (_Watching(yes=yes, verbose=conn.verbose, lock_ttl=lock_ttl) if watch
              else _Terminal(fmt, yes=yes or saved is not None, verbose=conn.verbose))
        options: dict[str, Any] = {
            "only": only, "db_prefix": db_prefix, "db_suffix": db_suffix,
            "design_deploy": None if design_deploy is None else design_deploy.value,
            "variables": _environ(var, var_file, {}), "parallel": parallel,
            "batch_size": batch_size, "lock_timeout": lock_timeout, "lock_ttl": lock_ttl,
            "wait_timeout": wait_timeout, "full": full, "shard": _shard(shard)}
        with conn.client(parallel) as client:
            if wait_for_server:
                _wait_for_server(client, wait_for_server)
            try:
                if isinstance(ui, _Watching):
                    watch_manifests(client, paths or (), hooks=ui, **options)
                    return
                done = apply_manifests(client, paths or (), saved=saved, hooks=ui, **options)
            except (ApplyError, ApplyInterrupted) as exc:
                _report_stop(exc, ui, lock_ttl)
                _fail(str(exc))
            except KeyboardInterrupt:
                if ui.locks is not None:  # locking or writing: what was written is recorded
                    _fail(_INTERRUPTED, code=130)
                if not watch:  # not yet locking: nothing written
                    raise
                typer.echo("\nStopped watching: nothing was being written.")
                return
        _report(done, ui, lock_ttl)
        if (unread := _unread(done.plan)) is not None:
            _fail(unread)


def _wait_for_server(client: Client, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not client.server.is_up():
        if time.monotonic() >= deadline:
            _fail(f"the server at {client.url} was not up after {seconds:g} s "
                  "(--wait-for-server): /_up did not answer ok")
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


@app.command("force-unlock")
@_connects
def force_unlock(
    databases: Annotated[list[str], typer.Argument(
        help="Databases whose apply lock to free; a pattern ('tenant-*') frees every "
             "matching one.", show_default=False)],
    *,
    conn: _Connection,
) -> None:
    """Free apply locks left by a process that is gone (it must really be gone).

    Example: couchsync force-unlock orders users
    """
    from couchsync.lock import force_unlock as free

    with _clean_errors(), conn.client() as client:
        for name, holder in free(client, databases).items():
            if holder is None:
                typer.echo(f"{name}: not locked")
            else:
                typer.echo(f"{name}: lock freed (was held by {holder.describe()})")


@app.command()
@_connects
def export(
    db: Annotated[list[str] | None, typer.Option(
        "--db", help="Database to export, or a pattern ('userdb-*'): what all its databases "
                     "share, once, as a pattern entry (the differences are named on "
                     "stderr). Repeatable.")] = None,
    *,
    conn: _Connection,
    with_docs: Annotated[bool, typer.Option(
        "--with-docs", help="Include the documents (without _rev).")] = False,
    users: Annotated[bool, typer.Option(
        "--users", help="Export every user of _users (never a password).")] = False,
    replications: Annotated[bool, typer.Option(
        "--replications", help="Export every replication of _replicator (credentials as "
                               "${VAR}, named on stderr).")] = False,
    config: Annotated[list[str] | None, typer.Option(
        "--config", metavar="SECTION", show_default=False,
        help="Export a config section as the cluster's nodes hold it (repeatable; not "
             "admins).")] = None,
    var: Annotated[list[str] | None, typer.Option(
        "--var", metavar="KEY=VALUE", show_default=False,
        help="Write ${KEY} wherever a string value is VALUE (repeatable): the manifest then "
             "needs --var KEY=VALUE to apply.")] = None,
    var_file: Annotated[list[Path] | None, typer.Option(
        "--var-file", metavar="FILE", show_default=False,
        help="As --var, for each variable of FILE (as plan and apply read it).")] = None,
    skip_unsupported: Annotated[bool, typer.Option(
        "--skip-unsupported", help="Export what a manifest can hold and leave out the rest "
                                   "(named on stderr; without this option export then "
                                   "fails).")] = False,
    attachments_dir: Annotated[Path | None, typer.Option(
        "--attachments-dir", metavar="DIR", show_default=False,
        help="Write the attachments of the exported documents and design docs as files "
             "under DIR (DIR/<database>/<document id>/<name>), named in the manifest from "
             "DIR's parent directory: save the manifest there.")] = None,
) -> None:
    """Write the live state of databases and server sections as a manifest (YAML on
    stdout; notes, such as the variables it needs, on stderr).

    Example: couchsync export --db users --with-docs > manifests/users.yaml
    """
    from couchsync.export import export_manifest

    with _clean_errors():
        given = dict(_environ(var, var_file, {}))
        with conn.client() as client:
            text = export_manifest(client, db or (), with_docs=with_docs, users=users,
                                   replications=replications, config=config or (),
                                   placeholders=given, skip_unsupported=skip_unsupported,
                                   notes=lambda message: typer.echo(message, err=True),
                                   attachments_dir=attachments_dir)
        typer.echo(text, nl=False)


def main() -> None:
    """Console-script entry point."""
    # What is imported by now lives until exit: in CPython's permanent generation, no
    # collection pass walks it again. A no-op plan's process: 0.27 → 0.23 s (bench/RESULTS.md,
    # issue 22).
    gc.freeze()
    app()
