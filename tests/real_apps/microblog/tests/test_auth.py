def test_register_then_login(client):
    response = client.post(
        "/auth/register",
        data={"username": "david", "email": "david@example.com", "password": "pw", "phone": ""},
    )
    assert response.headers["Location"] == "/auth/login"
    response = client.post("/auth/login", data={"username": "david", "password": "pw"})
    assert response.headers["Location"] == "/index"
    assert b"Hi, david!" in client.get("/index").data


def test_register_rejects_a_taken_username(client):
    response = client.post(
        "/auth/register", data={"username": "susan", "email": "x@example.com", "password": "pw"}
    )
    assert b"Please use a different username." in response.data


def test_wrong_password(client):
    response = client.post(
        "/auth/login", data={"username": "susan", "password": "dog"}, follow_redirects=True
    )
    assert b"Invalid username or password" in response.data


def test_login_redirects_to_next(client):
    response = client.post(
        "/auth/login?next=/user/susan", data={"username": "susan", "password": "cat"}
    )
    assert response.headers["Location"] == "/user/susan"


def test_remember_me_sets_the_cookie(client):
    client.post("/auth/login", data={"username": "susan", "password": "cat", "remember_me": "y"})
    assert client.get_cookie("remember_token") is not None


def test_index_needs_login(client):
    response = client.get("/index")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login?next=")


def test_logout(client):
    client.post("/auth/login", data={"username": "susan", "password": "cat"})
    client.get("/auth/logout")
    assert client.get("/index").status_code == 302
