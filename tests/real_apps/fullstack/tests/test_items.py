def test_create_and_list_items(client, admin_headers):
    created = client.post(
        "/api/items/", headers=admin_headers, json={"title": "Foo", "description": "Fighters"}
    )
    assert created.status_code == 200
    assert created.json() == {"id": 1, "title": "Foo", "description": "Fighters", "owner_id": 1}
    assert client.get("/api/items/", headers=admin_headers).json() == [created.json()]


def test_items_need_a_token(client):
    assert client.get("/api/items/").status_code == 401


def test_cors_preflight_from_the_frontend(client):
    response = client.options(
        "/api/items/",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert response.headers["access-control-allow-credentials"] == "true"


def test_cors_refuses_other_origins(client):
    response = client.options(
        "/api/items/",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 400
