import pytest
from backend import db
from backend.main import app
from fastapi.testclient import TestClient

from sms2fa_middleware import Identity
from sms2fa_middleware.testing import mark_verified

ADMIN = {"username": "admin@example.com", "password": "changethis"}
ADMIN_PHONE = "+12065550141"


@pytest.fixture(autouse=True)
def _sms2fa(sms2fa_env):  # the SMS second factor's settings: a fake SMS API, a temp file
    pass


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_PATH", str(tmp_path / "app.db"))
    with TestClient(app) as client:  # the lifespan creates the tables
        db.create_user(ADMIN["username"], ADMIN["password"], "Admin", phone=ADMIN_PHONE)
        db.create_user("nophone@example.com", "secret", "No Phone")
        yield client


def login(client, credentials=ADMIN):
    response = client.post("/api/login/access-token", data=credentials)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def admin_headers(client):
    headers = login(client)
    mark_verified(client, app, Identity(ADMIN["username"], ADMIN_PHONE))  # past the SMS code
    return headers
