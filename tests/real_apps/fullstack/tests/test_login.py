from conftest import ADMIN, login


def test_get_access_token(client):
    response = client.post("/api/login/access-token", data=ADMIN)
    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"


def test_incorrect_password(client):
    response = client.post(
        "/api/login/access-token", data={"username": ADMIN["username"], "password": "wrong"}
    )
    assert response.status_code == 400


def test_health_check(client):
    assert client.get("/api/utils/health-check/").json() is True


def test_me_needs_a_token(client):
    response = client.get("/api/users/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_bad_token(client):
    response = client.get("/api/users/me", headers={"Authorization": "Bearer not-a-jwt"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Could not validate credentials"}


def test_me_asks_for_the_sms_code(client, fake_flowroute):
    headers = login(client)
    response = client.get("/api/users/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["reason"] == "VerificationRequired"
    sent = client.post("/sms2fa/challenge/send", headers=headers, json={})
    assert sent.status_code == 200
    code = fake_flowroute.last_code("+12065550141")
    assert client.post("/sms2fa/challenge", headers=headers, json={"code": code}).status_code == 200
    assert client.get("/api/users/me", headers=headers).json()["email"] == ADMIN["username"]


def test_logout_needs_the_code_again(client, admin_headers):
    assert client.get("/api/users/me", headers=admin_headers).status_code == 200
    assert client.post("/api/logout", headers=admin_headers).status_code == 200
    assert client.get("/api/users/me", headers=admin_headers).status_code == 401
