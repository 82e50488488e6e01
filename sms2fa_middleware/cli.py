"""The sms2fa command: serve, demo, migrate, purge, check-routes, rules check."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import secrets
import socket
import sys
from collections.abc import Sequence

from . import __version__
from .errors import ConfigurationError, StoreUnavailable
from .settings import Settings

DESCRIPTION = (
    "SMS one-time-code verification: the standalone HTTP service, a demo app, and "
    "maintenance. Settings come from the environment (SMS2FA_*, FLOWROUTE_*); see docs/settings.md."
)


def _development_env() -> None:
    """Development mode for every worker: one throw-away key they all share."""
    os.environ["SMS2FA_DEVELOPMENT"] = "1"
    os.environ.setdefault("SMS2FA_SECRET_KEY", secrets.token_urlsafe(32))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _check_port_free(host: str, port: int) -> None:
    """Refuse a busy port now, before a URL is printed that would lead nowhere."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigurationError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "choose another with --port"
            ) from None


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .api.serve_protocol import (
        HEADER_TIMEOUT_ENV,
        MAX_CONNECTIONS_ENV,
        DeadlineHTTPProtocol,
        connection_bound,
        read_limits,
    )
    from .api.service import PREFIX_ENV

    # Every worker's protocol reads these (uvicorn builds it in each worker process).
    header_timeout, max_connections = read_limits(
        args.header_timeout or os.environ.get(HEADER_TIMEOUT_ENV),
        args.max_connections or os.environ.get(MAX_CONNECTIONS_ENV),
    )
    os.environ[HEADER_TIMEOUT_ENV] = str(header_timeout)
    os.environ[MAX_CONNECTIONS_ENV] = str(max_connections)
    if args.dev:
        _development_env()
    settings = Settings.from_env()  # fail here, once, with a clear message
    if not (_is_loopback(args.host) or settings.api_token or args.public):
        raise ConfigurationError(
            f"refusing to serve on {args.host} without SMS2FA_API_TOKEN: anyone who can "
            "reach it could send texts; set SMS2FA_API_TOKEN, or pass --public if "
            "something in front of it already restricts access"
        )
    settings.require_provider()  # say so before forking workers
    _check_port_free(args.host, args.port)
    _create_schema(settings.database_url)
    args.prefix = "/" + args.prefix.strip("/")
    os.environ[PREFIX_ENV] = args.prefix
    print(
        f"sms2fa: serving the verification API on http://{args.host}:{args.port}"
        f"{'' if args.prefix == '/' else args.prefix} ({args.workers} worker(s), "
        f"{settings.backend} SMS backend, {settings.database_url.split('://')[0]}; "
        f"request headers due within {header_timeout:g} s, at most "
        f"{connection_bound(max_connections)} connections per worker)",
        file=sys.stderr,
    )
    uvicorn.run(
        "sms2fa_middleware.api.service:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        # The access log would print query strings -- and so codes. Never enable it here.
        access_log=False,
        # Our own trusted_proxies setting decides whom X-Forwarded-For is believed from.
        proxy_headers=False,
        server_header=False,
        log_level="info",
        # Slow clients: a deadline for request headers and a bound on connections.
        http=DeadlineHTTPProtocol,
        ws="none",  # the API has no websockets
    )
    return 0


def _create_schema(database_url: str) -> None:
    """Create the tables if missing (idempotent); Unreachable if the database is."""
    from .store import Store

    store = Store(database_url)
    try:
        store.create_schema()
    except StoreUnavailable as exc:
        raise Unreachable(database_url, exc) from None
    finally:
        store.dispose()


def _migrate(_args: argparse.Namespace) -> int:
    from .store.urls import check_database_url

    # Only the database is needed: no secret key, no SMS provider.
    url = check_database_url(os.environ.get("SMS2FA_DATABASE_URL", ""))
    _create_schema(url)
    print(f"sms2fa: the tables are in place ({url.split('://')[0]})")
    return 0


def _purge(_args: argparse.Namespace) -> int:
    from .engine import Verifier
    from .sms import SendError

    class _SendsNothing:  # purging never sends; don't build (or warn about) a real sender
        def send(self, to: str, body: str) -> str:
            raise SendError("sms2fa purge sends no SMS")

    settings = Settings.from_env()
    try:
        verifier = Verifier(settings, sender=_SendsNothing())
        try:
            print(f"sms2fa: purged {verifier.purge()} expired row(s)")
        finally:
            verifier.store.dispose()
    except StoreUnavailable as exc:
        raise Unreachable(settings.database_url, exc) from None
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    _check_port_free(args.host, args.port)
    return run_demo(host=args.host, port=args.port)


def _check_routes(args: argparse.Namespace) -> int:
    from .app_routes import check_app, load_app

    warnings = check_app(load_app(args.app), args.protect, args.exclude, args.public or ())
    for warning in warnings:
        print(warning)
    print(
        f"sms2fa: {len(warnings)} route warning(s)"
        if warnings
        else "sms2fa: routes checked, no warnings",
        file=sys.stderr,
    )
    return 1 if warnings else 0


def _rules_check(args: argparse.Namespace) -> int:
    from .app_routes import load_app
    from .rules_report import explain, find_options

    for line in explain(find_options(load_app(args.app)), args.method, args.path):
        print(line)
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _port(text: str) -> int:
    value = _positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, got {value}")
    return value


def _add_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only)",
    )
    parser.add_argument(
        "--port", type=_port, default=8000, help="TCP port to listen on (default: %(default)s)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``sms2fa`` argument parser."""
    parser = argparse.ArgumentParser(prog="sms2fa", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        help="what to do (sms2fa COMMAND --help tells more)",
    )

    serve = commands.add_parser(
        "serve",
        help="run the standalone verification service (the HTTP API)",
        description="Run the HTTP verification API under uvicorn. Needs SMS2FA_SECRET_KEY and "
        "Flowroute credentials (FLOWROUTE_ACCESS_KEY, FLOWROUTE_SECRET_KEY, "
        "FLOWROUTE_NUMBER) unless --dev. GET /health checks the database.",
    )
    _add_address(serve)
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="worker processes (default: %(default)s); they share the database",
    )
    serve.add_argument("--prefix", default="/", help="mount the API here (default: /)")
    serve.add_argument(
        "--header-timeout",
        metavar="SECONDS",
        help="seconds a client has to send a request's headers before the "
        "connection is closed (default: $SMS2FA_SERVE_HEADER_TIMEOUT, "
        "else 10)",
    )
    serve.add_argument(
        "--max-connections",
        metavar="N",
        help="open connections per worker at most, lowered to fit the "
        "open-file limit; over it the oldest connection still waiting for "
        "headers is closed (default: $SMS2FA_SERVE_MAX_CONNECTIONS, "
        "else 1000)",
    )
    serve.add_argument(
        "--dev",
        action="store_true",
        help="development mode: a throw-away secret key; codes printed to the "
        "console unless Flowroute keys are set",
    )
    serve.add_argument(
        "--public",
        action="store_true",
        help="allow a non-loopback --host without SMS2FA_API_TOKEN (only when "
        "something in front of the service restricts who reaches it)",
    )
    serve.set_defaults(func=_serve)

    demo = commands.add_parser(
        "demo",
        help="run a protected example app with a fake phone (no Flowroute account)",
        description="A small app with a login and a protected page; a fake phone at /phone "
        "shows the texts it sends. Nothing is kept after it stops.",
    )
    _add_address(demo)
    demo.set_defaults(func=_demo)

    migrate = commands.add_parser(
        "migrate",
        help="create the database tables if they are missing (safe to repeat)",
        description="Create sms2fa's tables in SMS2FA_DATABASE_URL if they are missing; "
        "existing tables and rows are kept, so running it again (or from "
        "several hosts at once) is safe. Run it as a deploy step when the app "
        "should not create tables itself (Django); sms2fa serve, sms2fa demo "
        "and the middleware create them on their own.",
    )
    migrate.set_defaults(func=_migrate)

    purge = commands.add_parser(
        "purge",
        help="delete expired codes, counters and old revocations now",
        description="Delete expired codes, counters and revocations older than 31 days. "
        "Running services already purge once a minute; run this from cron when "
        "nothing serves for long stretches, or before a backup.",
    )
    purge.set_defaults(func=_purge)

    check = commands.add_parser(
        "check-routes",
        help="warn about routes the protect patterns may leave open (exit 1)",
        description="Import a Flask, Starlette/FastAPI or Django app (module:attr, as servers "
        "name it; Django: the project's wsgi or asgi application, SMS2FA read "
        "from its settings) and print a warning for each route the protect "
        "patterns may leave open, each pattern or rule that matches no route, "
        "and (Flask, Starlette/FastAPI) each route a rule with methods covers "
        "only in part. Exit status 1 when there are warnings, 2 when the app "
        "cannot be loaded.",
    )
    check.add_argument("app", help="the application, as module:attr (e.g. myapp:app)")
    check.add_argument(
        "--protect",
        action="append",
        metavar="PATTERN",
        help="a protect pattern (repeat it; default: the SMS2FAMiddleware "
        "around the app, or Django's SMS2FA)",
    )
    check.add_argument(
        "--exclude",
        action="append",
        metavar="PATTERN",
        help="an exclude pattern (repeat it; default: as --protect)",
    )
    check.add_argument(
        "--public",
        action="append",
        metavar="PATTERN",
        help="a route that is deliberately open: no warning about it "
        "(repeat it; Django default: SMS2FA_PUBLIC_ROUTES)",
    )
    check.set_defaults(func=_check_routes)

    rules = commands.add_parser(
        "rules",
        help="what the protect rules ask of a request",
        description="Inspect the protect rules of the SMS2FAMiddleware around an app.",
    )
    rules_commands = rules.add_subparsers(
        dest="rules_command", required=True, metavar="ACTION", help="check"
    )
    rules_check = rules_commands.add_parser(
        "check",
        help="print the entries matching a request and what it must bring",
        description="Print the protect entries (plain patterns and rules) that match METHOD "
        "PATH and the effective requirement: protected or not, the strictest max_age and "
        "idle. A rule's when is not asked (there is no request): what it adds is printed.",
    )
    rules_check.add_argument("path", help="the request's path, as the app routes it")
    rules_check.add_argument("--method", default="GET", help="the method (default: GET)")
    rules_check.add_argument(
        "--app", required=True, help="the application, as module:attr (e.g. myapp:app)"
    )
    rules_check.set_defaults(func=_rules_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sms2fa`` and ``python -m sms2fa_middleware``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return int(args.func(args))
    except ConfigurationError as exc:
        print(f"sms2fa: configuration error: {exc}", file=sys.stderr)
        return 2
    except Unreachable as exc:
        print(f"sms2fa: {exc}", file=sys.stderr)
        return 1


class Unreachable(Exception):
    """The database cannot be reached: one line naming it (never its password) and why."""

    def __init__(self, database_url: str, error: StoreUnavailable) -> None:
        from sqlalchemy.engine import make_url

        url = make_url(database_url)
        if url.get_backend_name() == "sqlite":
            where = f"the SQLite database {url.database}"
        else:
            where = f"the database {url.database!r} on {url.host or 'localhost'}:{url.port or 5432}"
        cause = error.__cause__
        cause = getattr(cause, "orig", None) or cause
        lines = str(cause).strip().splitlines() if cause else []
        why = lines[0] if lines else type(cause).__name__ if cause else "unavailable"
        super().__init__(f"cannot reach {where} (SMS2FA_DATABASE_URL): {why}")


if __name__ == "__main__":
    sys.exit(main())
