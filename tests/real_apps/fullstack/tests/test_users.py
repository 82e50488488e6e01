from conftest import ADMIN, login


def test_read_me(client, admin_headers):
    response = client.get("/api/users/me", headers=admin_headers)
    assert response.json() == {"id": 1, "email": ADMIN["username"], "full_name": "Admin"}


def test_update_me(client, admin_headers):
    response = client.patch("/api/users/me", headers=admin_headers, json={"full_name": "Root"})
    assert response.json()["full_name"] == "Root"
    assert client.get("/api/users/me", headers=admin_headers).json()["full_name"] == "Root"


def test_user_without_a_phone(client, sms2fa_assume_verified):
    sms2fa_assume_verified(phone="+12065550142")
    headers = login(client, {"username": "nophone@example.com", "password": "secret"})
    assert client.get("/api/users/me", headers=headers).json()["full_name"] == "No Phone"
