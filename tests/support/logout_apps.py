"""The apps of tests/support/apps.py (Flask, Starlette) for real multi-worker servers: each worker
imports this module and builds its app from the environment (``Settings.from_env``):
``gunicorn -w 4 'tests.support.logout_apps:flask_app()'``, ``uvicorn --workers 4 --factory
tests.support.logout_apps:starlette_app``. One user, ``alice``; ``/logout`` revokes her sessions
(``revoke(user)``, as the README shows), ``/logout/device`` this device's only
(``revoke_session(request)``, whose Set-Cookie headers delete the cookie).
"""

from __future__ import annotations

from typing import Any

from .apps import flask_app as make_flask
from .apps import starlette_app as make_starlette

ALICE, ALICE_PHONE = "alice", "+12065550100"
USERS = {ALICE: ALICE_PHONE}


def flask_app() -> Any:
    """For gunicorn."""
    from sms2fa_middleware import Settings

    app, _ = make_flask(USERS, Settings.from_env())
    return app


def starlette_app() -> Any:
    """For uvicorn (``--factory``)."""
    from sms2fa_middleware import Settings

    app, _ = make_starlette(USERS, Settings.from_env(), [])
    return app
