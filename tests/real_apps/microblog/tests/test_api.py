from conftest import basic


def token(client, username="susan", password="cat"):
    response = client.post("/api/tokens", headers=basic(username, password))
    assert response.status_code == 200
    return response.get_json()["token"]


def bearer(value):
    return {"Authorization": f"Bearer {value}"}


def test_token_needs_the_password(client):
    response = client.post("/api/tokens", headers=basic("susan", "dog"))
    assert response.status_code == 401
    assert client.post("/api/tokens").status_code == 401


def test_api_needs_a_token(client):
    response = client.get("/api/users/1")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/api/users/1", headers=bearer("nope")).status_code == 401


def test_get_user(client, sms2fa_assume_verified):
    response = client.get("/api/users/1", headers=bearer(token(client)))
    assert response.status_code == 200
    assert response.get_json() == {"id": 1, "username": "susan", "about_me": "", "post_count": 0}


def test_update_own_user_only(client, sms2fa_assume_verified):
    headers = bearer(token(client))
    response = client.put("/api/users/1", json={"about_me": "from the API"}, headers=headers)
    assert response.get_json()["about_me"] == "from the API"
    assert client.put("/api/users/2", json={"about_me": "x"}, headers=headers).status_code == 403


def test_revoked_token(client, sms2fa_assume_verified):
    value = token(client)
    assert client.delete("/api/tokens", headers=bearer(value)).status_code == 204
    assert client.get("/api/users/1", headers=bearer(value)).status_code == 401
