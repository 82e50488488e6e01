"""The user: Flask-Login's UserMixin over a row, with the API token."""

import secrets
import time

from flask_login import UserMixin
from werkzeug.security import check_password_hash, generate_password_hash

from . import login
from .db import get_db


class User(UserMixin):
    def __init__(self, row):
        self.id = row["id"]
        self.username = row["username"]
        self.email = row["email"]
        self.password_hash = row["password_hash"]
        self.about_me = row["about_me"]
        self.phone = row["phone"]

    @staticmethod
    def get(user_id):
        row = get_db().execute("SELECT * FROM user WHERE id = ?", (user_id,)).fetchone()
        return User(row) if row is not None else None

    @staticmethod
    def by_username(username):
        row = get_db().execute("SELECT * FROM user WHERE username = ?", (username,)).fetchone()
        return User(row) if row is not None else None

    @staticmethod
    def create(username, email, password, phone=None):
        db = get_db()
        db.execute(
            "INSERT INTO user (username, email, password_hash, phone) VALUES (?, ?, ?, ?)",
            (username, email, generate_password_hash(password), phone),
        )
        db.commit()
        return User.by_username(username)

    def check_password(self, password):
        return check_password_hash(self.password_hash, password)

    def set_about_me(self, about_me):
        db = get_db()
        db.execute("UPDATE user SET about_me = ? WHERE id = ?", (about_me, self.id))
        db.commit()
        self.about_me = about_me

    def get_token(self, expires_in=3600):
        token = secrets.token_hex(16)
        db = get_db()
        db.execute(
            "UPDATE user SET token = ?, token_expiration = ? WHERE id = ?",
            (token, int(time.time()) + expires_in, self.id),
        )
        db.commit()
        return token

    def revoke_token(self):
        db = get_db()
        db.execute(
            "UPDATE user SET token_expiration = ? WHERE id = ?", (int(time.time()) - 1, self.id)
        )
        db.commit()

    @staticmethod
    def check_token(token):
        row = get_db().execute("SELECT * FROM user WHERE token = ?", (token,)).fetchone()
        if row is None or row["token_expiration"] < time.time():
            return None
        return User(row)

    def to_dict(self):
        return {
            "id": self.id,
            "username": self.username,
            "about_me": self.about_me,
            "post_count": get_db()
            .execute("SELECT COUNT(*) FROM post WHERE user_id = ?", (self.id,))
            .fetchone()[0],
        }


@login.user_loader
def load_user(user_id):
    return User.get(int(user_id))


@login.request_loader
def load_user_from_token(request):
    """API clients: ``Authorization: Bearer <token>``."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return User.check_token(token)
