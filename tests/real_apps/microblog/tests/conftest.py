import base64

import pytest
from app import create_app
from app.db import init_db
from app.models import User

from sms2fa_middleware import Identity
from sms2fa_middleware.testing import mark_verified


@pytest.fixture(autouse=True)
def _sms2fa(sms2fa_env):  # the SMS second factor's settings: a fake SMS API, a temp file
    pass


@pytest.fixture
def app(tmp_path):
    app = create_app({"TESTING": True, "DATABASE": str(tmp_path / "app.db")})
    with app.app_context():
        init_db()
        User.create("susan", "susan@example.com", "cat", phone="+12065550131")
        User.create("john", "john@example.com", "dog")  # no phone on file
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def susan(app):
    with app.app_context():
        return User.by_username("susan")


@pytest.fixture
def verified_client(client, app, susan):
    """Susan, logged in, past the SMS code."""
    client.post("/auth/login", data={"username": "susan", "password": "cat"})
    mark_verified(client, app, Identity(susan.id, susan.phone))
    return client


def basic(username, password):
    return {
        "Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    }
