"""The ``sms2fa`` command: ``serve``, ``demo`` and ``purge``."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from collections.abc import Sequence

from .errors import ConfigurationError, StoreUnavailable
from .settings import Settings


def _development_env() -> None:
    """Development mode for every worker: one throw-away key they all share."""
    os.environ["SMS2FA_DEVELOPMENT"] = "1"
    os.environ.setdefault("SMS2FA_SECRET_KEY", secrets.token_urlsafe(32))


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .service import PREFIX_ENV

    if args.dev:
        _development_env()
    settings = Settings.from_env()  # fail here, once, with a clear message
    from .store import Store

    store = Store(settings.database_url)
    store.create_schema()
    store.dispose()
    args.prefix = "/" + args.prefix.strip("/")
    os.environ[PREFIX_ENV] = args.prefix
    print(
        f"sms2fa: serving the verification API on http://{args.host}:{args.port}"
        f"{'' if args.prefix == '/' else args.prefix} ({args.workers} worker(s), "
        f"{settings.backend} SMS backend, {settings.database_url.split('://')[0]})",
        file=sys.stderr,
    )
    uvicorn.run(
        "sms2fa_middleware.service:create_app",
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
    )
    return 0


def _purge(_args: argparse.Namespace) -> int:
    from .engine import Verifier
    from .sms import SendError

    class _SendsNothing:  # purging never sends; don't build (or warn about) a real sender
        def send(self, to: str, body: str) -> str:
            raise SendError("sms2fa purge sends no SMS")

    verifier = Verifier(Settings.from_env(), sender=_SendsNothing())
    print(f"sms2fa: purged {verifier.purge()} expired row(s)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(host=args.host, port=args.port)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sms2fa`` and ``python -m sms2fa_middleware``."""
    parser = argparse.ArgumentParser(prog="sms2fa", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the standalone verification service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--prefix", default="/", help="mount the API here (default /)")
    serve.add_argument("--dev", action="store_true",
                       help="development mode: throw-away secret key; console SMS unless "
                            "Flowroute keys are set")
    serve.set_defaults(func=_serve)

    demo = commands.add_parser("demo", help="run a protected example app with a fake phone")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.set_defaults(func=_demo)

    purge = commands.add_parser("purge", help="delete expired codes and counters now")
    purge.set_defaults(func=_purge)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return int(args.func(args))
    except ConfigurationError as exc:
        print(f"sms2fa: configuration error: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        # Say which setting to look at instead of a page of driver traceback.
        print(f"sms2fa: cannot reach the database (SMS2FA_DATABASE_URL): {exc}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
