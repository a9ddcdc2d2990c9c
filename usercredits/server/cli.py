"""The `usercredits` command: serve the API, issue a local token, manage API keys, run the
sweep once (as the server does), import and export the offer catalogue, export the schema.

The admin commands work beside a running `usercredits serve`: on the embedded database they
connect to the server's (server/embedded.py). An expected failure (a database that does not
answer, a port or file that cannot be used, input a rule refuses) is one line on stderr
starting `usercredits:` and exit code 1, never a traceback; bad arguments and settings exit
with 2.
"""

import argparse
import asyncio
import gc
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import NoReturn, TypeVar

from aiohttp import web
from pydantic import ValidationError
from pymongo.errors import ConfigurationError, ConnectionFailure, OperationFailure, PyMongoError

from usercredits.api import build_schema
from usercredits.models.collections import Collections
from usercredits.server.app import create_app, payment_client, services_for
from usercredits.server.auth import issue_token
from usercredits.server.database import open_database
from usercredits.server.embedded import AUTHENTICATION_FAILED, EmbeddedDatabaseError
from usercredits.server.listener import listen as listen_for_webhooks
from usercredits.server.logs import JsonAccessLogger, configure_logging
from usercredits.server.ports import bind
from usercredits.server.settings import Settings
from usercredits.server.workers import Workers, listen
from usercredits.services import Services
from usercredits.services.catalogue.files import CatalogueErrors, export_catalogue, import_catalogue
from usercredits.services.clock import SystemClock
from usercredits.services.errors import DomainError
from usercredits.services.identity.access import Role
from usercredits.services.identity.api_keys import ApiKeyView, CreatedApiKey
from usercredits.services.migration import (
    Migrated,
    date_balances,
    key_ledger_entries,
    migrate_balances,
)
from usercredits.services.sweep import SweepResult, sweep

T = TypeVar("T")

log = logging.getLogger(__name__)


def _fail(message: str) -> NoReturn:
    """Ends the command on an expected failure: one line saying what to do, exit code 1."""
    print(f"usercredits: {message}", file=sys.stderr)
    sys.exit(1)


def _serve(settings: Settings, host: str, port: int, workers: int, fd: int | None) -> None:
    """Serves with `workers` processes; with `fd`, as one of a supervisor's workers,
    accepting on the listening socket it was handed (no banner, no warnings: the
    supervisor gave them). The port is bound before the banner names it, and before the
    database starts, so that a port in use fails at once."""
    if fd is not None:
        _run_app(settings, socket.socket(fileno=fd))
        return
    for warning in settings.production_warnings():
        log.warning(warning)
    try:
        sockets = listen(host, port, workers) if workers > 1 else [bind(host, port)]
    except OSError as exc:
        _cannot_listen(host, port, exc, "--port or USERCREDITS_PORT")
    _banner(settings, host, sockets[0].getsockname()[1], workers)
    if workers > 1:
        sys.exit(asyncio.run(Workers(settings, sockets=sockets).run()))
    _run_app(settings, sockets[0])


def _cannot_listen(host: str, port: int, exc: OSError, options: str) -> NoReturn:
    if isinstance(exc, socket.gaierror):
        _fail(f"cannot listen on {host}: {exc.strerror} (--host)")
    # The system's words for the errno: the socket module's message repeats the address.
    reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror
    _fail(
        f"cannot listen on {host}:{port} ({reason}): stop what holds it, or pick another "
        f"port ({options})"
    )


def _run_app(settings: Settings, listening: socket.socket) -> None:
    app = create_app(settings)
    _settle_collector()
    web.run_app(
        app,
        sock=listening,
        print=None,
        access_log_class=JsonAccessLogger,
        loop=new_event_loop(),
    )


def _settle_collector() -> None:
    """Leaves what the process made while starting (modules, the schema) out of garbage
    collections, and collects the youngest objects less often. Each subscriber's delivery
    of an event allocates short-lived objects; with the default threshold a collection ran
    every few hundred deliveries, a full one now and then through every subscription's
    objects, and delivering one debit to a user's 1,000 tabs took from 60 to 110 ms
    (bench, fanout). Short-lived objects are freed by reference counting, so collecting
    less often costs little memory."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


def default_workers(settings: Settings) -> int:
    """One worker per core where workers can share a port (SO_REUSEPORT), else one; one
    with the sandbox provider, whose payments and saved cards live in one process's memory
    (a payment made through one worker could not be completed through another)."""
    if settings.provider == "sandbox" or not hasattr(socket, "SO_REUSEPORT"):
        return 1
    return os.cpu_count() or 1


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it installs (not on Windows), whose socket and timer handling costs a
    fraction of the standard loop's; the standard loop elsewhere."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _banner(settings: Settings, host: str, port: int, workers: int) -> None:
    where = (
        "the configured MongoDB"
        if settings.mongodb_uri
        else f"an embedded SecantusDB in {settings.data_dir.resolve()}"
    )
    demo = f"; demo page: http://{host}:{port}/" if settings.demo else ""
    print(  # the one line a person starting the service needs
        f"UserCredits GraphQL: http://{host}:{port}/graphql (GraphiQL in a browser){demo}; "
        f"database: {where}, payments: "
        f"{'Stripe' if settings.provider == 'stripe' else 'SANDBOX (no money moves)'}, "
        f"{workers} worker process{'es' if workers > 1 else ''}",
        flush=True,
    )


async def _with_services(settings: Settings, work: Callable[[Services], Awaitable[T]]) -> T:
    """Runs `work` on the services over the configured (or embedded) database."""
    async with open_database(settings) as client:
        clock = SystemClock()
        payments = payment_client(settings, clock)
        try:
            return await work(await services_for(settings, client, payments, clock))
        finally:
            await payments.close()


def _create_api_key(settings: Settings, name: str, role: Role) -> None:
    async def create(services: Services) -> CreatedApiKey:
        return await services.api_keys.create(name=name, role=role)

    created = asyncio.run(_with_services(settings, create))
    print(created.secret)
    print(
        f"API key {created.key.id} ({created.key.name}, {created.key.role.value}): the line "
        "above is its secret, shown this once; send it as `Authorization: Bearer <secret>`",
        file=sys.stderr,
    )


def _list_api_keys(settings: Settings) -> None:
    """Prints a header, then one tab-separated line per key, newest first."""

    async def read(services: Services) -> list[ApiKeyView]:
        return await services.api_keys.list_keys()

    print("id\tname\trole\tprefix\tcreated\tlast used\trevoked")
    for key in asyncio.run(_with_services(settings, read)):
        moments = (key.created_at, key.last_used_at, key.revoked_at)
        when = [moment.isoformat(timespec="seconds") if moment else "-" for moment in moments]
        print("\t".join([key.id, key.name, key.role.value, key.prefix, *when]))


def _revoke_api_key(settings: Settings, key_id: str) -> None:
    async def revoke(services: Services) -> ApiKeyView:
        return await services.api_keys.revoke(key_id=key_id)

    key = asyncio.run(_with_services(settings, revoke))
    assert key.revoked_at is not None  # revoke's result is a revoked key
    print(
        f"API key {key.id} ({key.name}) revoked at {key.revoked_at.isoformat(timespec='seconds')}"
        "; servers refuse it within a second"
    )


def _expire(settings: Settings) -> int:
    """Sweeps once and prints what it did; 1 when a step failed or a document was skipped
    (the log says which), after the rest of the sweep ran."""

    async def once(services: Services) -> SweepResult:
        return await sweep(
            services, reconcile_after=timedelta(seconds=settings.pending_reconcile_seconds)
        )

    result = asyncio.run(_with_services(settings, once))
    print(result)
    if result.troubled:
        print("usercredits: part of the sweep was skipped; the log says what", file=sys.stderr)
    return 1 if result.troubled else 0


def _migrate(settings: Settings, dry_run: bool) -> None:
    async def run() -> tuple[list[Migrated], int, int]:
        async with open_database(settings) as client:
            collections = Collections.of(client[settings.database])
            return (
                await migrate_balances(collections=collections, dry_run=dry_run),
                await key_ledger_entries(collections=collections, dry_run=dry_run),
                await date_balances(collections=collections, dry_run=dry_run),
            )

    changes, keyed, dated = asyncio.run(run())
    verb = "would get" if dry_run else "got"
    for change in changes:
        print(f"{change}: {verb} migrated")
    print(f"{len(changes)} balances {'to migrate' if dry_run else 'migrated'}")
    print(f"{keyed} keyed ledger entries {'to index' if dry_run else 'indexed'} by user_key")
    print(f"{dated} balances {'to date' if dry_run else 'dated'} for the sweep")


def _import(settings: Settings, path: Path, dry_run: bool) -> int:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {path}: {_reason(exc)}")

    async def load(services: Services) -> int:
        try:
            changes = await import_catalogue(offers=services.offers, text=text, dry_run=dry_run)
        except CatalogueErrors as exc:
            for problem in exc.problems:
                print(f"{path}: {problem}", file=sys.stderr)
            return 1
        verb = "would be" if dry_run else "was"
        for change in changes:
            print(
                f"{path}:{change.line}: {change.key} {verb} {change.action}d"
                if change.action != "unchanged"
                else f"{path}:{change.line}: {change.key} unchanged"
            )
        return 0

    return asyncio.run(_with_services(settings, load))


def _export(settings: Settings, output: Path | None) -> None:
    async def dump(services: Services) -> str:
        return export_catalogue(await services.offers.on_sale())

    text = asyncio.run(_with_services(settings, dump))
    if output is None:
        print(text, end="")
    else:
        _write(output, text)


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        _fail(f"cannot write {path}: {_reason(exc)}")


def _reason(exc: OSError | UnicodeDecodeError) -> str:
    return (exc.strerror or str(exc)) if isinstance(exc, OSError) else "it is not UTF-8 text"


def _database_failure(exc: PyMongoError, settings: Settings) -> str:
    """What went wrong with the database, in a line that names no password."""
    if settings.mongodb_uri is None:
        where = f"the embedded database in {settings.data_dir.resolve() / 'db'}"
    else:
        hosts = settings.mongodb_uri.partition("://")[2].partition("/")[0].rpartition("@")[2]
        where = f"the database at {hosts} (USERCREDITS_MONGODB_URI)"
    if isinstance(exc, OperationFailure) and exc.code == AUTHENTICATION_FAILED:
        return f"{where} refused the user and password it was given"
    if isinstance(exc, ConnectionFailure):
        return f"{where} did not answer: start it, or check the address"
    if isinstance(exc, ConfigurationError):
        return f"USERCREDITS_MONGODB_URI is not usable: {exc}"
    return f"{where} refused the operation: {str(exc).splitlines()[0]}"


def _port(text: str) -> int:
    """An argparse type: a TCP port number (0: one the system picks)."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="usercredits", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API (embedded database if none is set)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=_port)
    serve.add_argument(
        "--workers",
        type=int,
        help="server processes sharing the port (default: USERCREDITS_WORKERS, else one per core)",
    )
    serve.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    token = commands.add_parser("token", help="print a signed JWT for local use")
    token.add_argument("--user", required=True)
    token.add_argument("--role", action="append", choices=[r.value for r in Role])
    apikey = commands.add_parser("apikey", help="API keys for back ends")
    apikey_commands = apikey.add_subparsers(dest="apikey_command", required=True)
    create_key = apikey_commands.add_parser(
        "create", help="make a key (the first admin key of a fresh deployment) and print it"
    )
    create_key.add_argument("--name", required=True)
    create_key.add_argument("--role", required=True, choices=[Role.SERVICE.value, Role.ADMIN.value])
    apikey_commands.add_parser("list", help="every key, revoked ones too, newest first")
    revoke_key = apikey_commands.add_parser("revoke", help="revoke a key: servers refuse it")
    revoke_key.add_argument("id", help="the key's id, as `apikey list` shows it")
    commands.add_parser("expire", help="run the sweep once, as the server does")
    migrate = commands.add_parser(
        "migrate",
        help="bring a database written by an earlier version to this one (run after upgrading)",
    )
    migrate.add_argument("--dry-run", action="store_true", help="show changes, write nothing")
    offers = commands.add_parser("offers", help="the catalogue as a YAML or JSON file")
    offer_commands = offers.add_subparsers(dest="offers_command", required=True)
    load = offer_commands.add_parser("import", help="upsert the file's offers by key")
    load.add_argument("file", type=Path)
    load.add_argument("--dry-run", action="store_true", help="show changes, write nothing")
    dump = offer_commands.add_parser("export", help="write the live offers as a catalogue")
    dump.add_argument("--output", type=Path)
    hooks = commands.add_parser("webhooks", help="outbound webhooks")
    hook_commands = hooks.add_subparsers(dest="webhooks_command", required=True)
    receive = hook_commands.add_parser(
        "listen", help="receive webhooks locally: verify each one and print its event"
    )
    receive.add_argument("--port", type=_port, default=8787)
    receive.add_argument("--host", default="127.0.0.1")
    receive.add_argument(
        "--secret",
        default=os.environ.get("USERCREDITS_WEBHOOK_SECRET"),
        help="the endpoint's whsec_ secret (default: USERCREDITS_WEBHOOK_SECRET)",
    )
    export = commands.add_parser("export-schema", help="write the GraphQL schema (SDL)")
    export.add_argument("--output", type=Path, default=Path("schema.graphql"))
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "webhooks":
        if not args.secret:
            parser.error("webhooks listen needs the endpoint's secret (--secret)")
        try:
            listening = bind(args.host, args.port)
        except OSError as exc:
            _cannot_listen(args.host, args.port, exc, "--port")
        listen_for_webhooks(listening=listening, secret=args.secret)
        return

    configure_logging()
    try:
        settings = Settings()
    except ValidationError as exc:
        # One line per bad setting, naming its variable; no traceback.
        for error in exc.errors():
            where = "_".join(str(part) for part in error["loc"]).upper()
            variable = f"USERCREDITS_{where}: " if where else ""
            print(f"usercredits: {variable}{error['msg']}", file=sys.stderr)
        sys.exit(2)
    try:
        _run(parser, args, settings)
    except KeyboardInterrupt:  # Ctrl-C: what the command started has been stopped
        sys.exit(130)
    except EmbeddedDatabaseError as exc:
        _fail(str(exc))
    except PyMongoError as exc:
        _fail(_database_failure(exc, settings))
    except DomainError as exc:
        _fail(exc.message)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Settings) -> None:
    if args.command == "serve":
        if args.workers is not None and args.workers < 1:
            parser.error("--workers must be at least 1")
        workers = args.workers or settings.workers or default_workers(settings)
        if workers > 1 and not hasattr(socket, "SO_REUSEPORT"):
            parser.error("several workers need SO_REUSEPORT, which this system lacks")
        port = settings.port if args.port is None else args.port
        if workers > 1 and port == 0:
            parser.error("several workers need the port chosen (--port), not 0")
        _serve(settings, args.host or settings.host, port, workers, args.fd)
    elif args.command == "token":
        if settings.token_rules is None:
            print(
                "usercredits: HS256 tokens are switched off (an identity provider is set "
                "and USERCREDITS_JWT_SECRET is not)",
                file=sys.stderr,
            )
            sys.exit(2)
        roles = [Role(r) for r in args.role or [Role.USER.value]]
        print(issue_token(rules=settings.token_rules, user_id=args.user, roles=roles))
    elif args.command == "apikey" and args.apikey_command == "create":
        _create_api_key(settings, args.name, Role(args.role))
    elif args.command == "apikey" and args.apikey_command == "list":
        _list_api_keys(settings)
    elif args.command == "apikey":
        _revoke_api_key(settings, args.id)
    elif args.command == "expire":
        sys.exit(_expire(settings))
    elif args.command == "migrate":
        _migrate(settings, args.dry_run)
    elif args.command == "offers" and args.offers_command == "import":
        sys.exit(_import(settings, args.file, args.dry_run))
    elif args.command == "offers":
        _export(settings, args.output)
    else:
        _write(args.output, build_schema().as_str() + "\n")


if __name__ == "__main__":
    main()
