def test_post_shows_on_the_home_page(client):
    client.post("/auth/login", data={"username": "susan", "password": "cat"})
    response = client.post("/index", data={"post": "hello world"}, follow_redirects=True)
    assert b"Your post is now live!" in response.data
    assert b"susan says: hello world" in response.data


def test_user_page(client):
    client.post("/auth/login", data={"username": "susan", "password": "cat"})
    assert b"User: susan" in client.get("/user/susan").data
    assert client.get("/user/nobody").status_code == 404


def test_edit_profile_needs_login(client):
    response = client.get("/edit_profile")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")


def test_edit_profile(verified_client):
    assert b"Edit Profile" in verified_client.get("/edit_profile").data
    response = verified_client.post(
        "/edit_profile", data={"about_me": "I like cats"}, follow_redirects=True
    )
    assert b"Your changes have been saved." in response.data
    assert b"I like cats" in verified_client.get("/user/susan").data


def test_edit_profile_without_a_phone(client, sms2fa_assume_verified):
    sms2fa_assume_verified(phone="+12065550132")  # john has no phone on file
    client.post("/auth/login", data={"username": "john", "password": "dog"})
    response = client.post("/edit_profile", data={"about_me": "dogs"}, follow_redirects=True)
    assert b"Your changes have been saved." in response.data


def test_edit_profile_asks_for_the_sms_code(client, fake_flowroute):
    client.post("/auth/login", data={"username": "susan", "password": "cat"})
    response = client.get("/edit_profile", headers={"Accept": "text/html"})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/sms2fa/challenge")
    assert len(fake_flowroute.messages_to("+12065550131")) == 1
