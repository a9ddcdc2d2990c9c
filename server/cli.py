"""The `usercredits` command: serve the API, issue a local token, run the expiry sweep once,
export the schema."""

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from schema import build_schema
from server.app import create_app, payment_client
from server.auth import issue_token
from server.database import connect, init_models
from server.embedded import EmbeddedDatabase
from server.settings import Settings
from services import build_services
from services.access import Role
from services.clock import SystemClock
from services.expiry import expire_due

log = logging.getLogger("usercredits")


def _serve(settings: Settings, host: str, port: int) -> None:
    where = (
        "the configured MongoDB"
        if settings.mongodb_uri
        else f"an embedded SecantusDB in {settings.data_dir.resolve()}"
    )
    print(  # the one line a person starting the service needs
        f"UserCredits GraphQL: http://{host}:{port}/graphql (GraphiQL in a browser), "
        f"database: {where}, payments: "
        f"{'Stripe' if settings.stripe_secret_key else 'SANDBOX (no money moves)'}",
        flush=True,
    )
    web.run_app(create_app(settings), host=host, port=port, print=None)


async def _expire(settings: Settings) -> None:
    async def sweep(uri: str) -> None:
        client = connect(uri)
        await init_models(client, settings.database)
        payments = payment_client(settings)
        services = build_services(
            client=client,
            payments=payments,
            clock=SystemClock(),
            default_currency=settings.default_currency,
        )
        result = await expire_due(
            wallets=services.wallets,
            orders=services.orders,
            now=services.clock.now(),
            reconcile_after=timedelta(seconds=settings.pending_reconcile_seconds),
        )
        print(result)
        await payments.close()
        await client.close()

    if settings.mongodb_uri:
        await sweep(settings.mongodb_uri)
    else:
        async with EmbeddedDatabase(settings.data_dir.resolve() / "db") as uri:
            await sweep(uri)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="usercredits", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API (embedded database if none is set)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    token = commands.add_parser("token", help="print a signed JWT for local use")
    token.add_argument("--user", required=True)
    token.add_argument("--role", action="append", choices=[r.value for r in Role])
    commands.add_parser("expire", help="run the expiry sweep once")
    export = commands.add_parser("export-schema", help="write the GraphQL schema (SDL)")
    export.add_argument("--output", type=Path, default=Path("schema.graphql"))
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format='{"time": "%(asctime)s", "level": "%(levelname)s", "logger": "%(name)s", '
        '"message": "%(message)s"}',
    )
    settings = Settings()
    if args.command == "serve":
        _serve(settings, args.host or settings.host, args.port or settings.port)
    elif args.command == "token":
        roles = [Role(r) for r in args.role or [Role.USER.value]]
        print(issue_token(secret=settings.jwt_secret, user_id=args.user, roles=roles))
    elif args.command == "expire":
        asyncio.run(_expire(settings))
    else:
        args.output.write_text(build_schema().as_str() + "\n")


if __name__ == "__main__":
    main()
