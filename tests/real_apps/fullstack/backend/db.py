"""Users and items in SQLite (one connection per call: the app is small)."""

import os
import sqlite3
from contextlib import closing

from pwdlib import PasswordHash

password_hash = PasswordHash.recommended()

SCHEMA = """
CREATE TABLE IF NOT EXISTS user (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT UNIQUE NOT NULL,
    full_name TEXT NOT NULL DEFAULT '',
    hashed_password TEXT NOT NULL,
    phone TEXT,
    is_active INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS item (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    description TEXT,
    owner_id INTEGER NOT NULL REFERENCES user (id)
);
"""


def path():
    return os.environ.get("DATABASE_PATH", "app.db")


def connect():
    db = sqlite3.connect(path())
    db.row_factory = sqlite3.Row
    return db


def init_db():
    with closing(connect()) as db:
        db.executescript(SCHEMA)


def create_user(email, password, full_name="", phone=None):
    with closing(connect()) as db, db:
        db.execute(
            "INSERT INTO user (email, full_name, hashed_password, phone) VALUES (?, ?, ?, ?)",
            (email, full_name, password_hash.hash(password), phone),
        )


def get_user(email):
    with closing(connect()) as db:
        return db.execute("SELECT * FROM user WHERE email = ?", (email,)).fetchone()


def update_user(email, full_name):
    with closing(connect()) as db, db:
        db.execute("UPDATE user SET full_name = ? WHERE email = ?", (full_name, email))


def items_of(owner_id):
    with closing(connect()) as db:
        return db.execute(
            "SELECT * FROM item WHERE owner_id = ? ORDER BY id", (owner_id,)
        ).fetchall()


def create_item(owner_id, title, description):
    with closing(connect()) as db, db:
        cursor = db.execute(
            "INSERT INTO item (title, description, owner_id) VALUES (?, ?, ?)",
            (title, description, owner_id),
        )
        return db.execute("SELECT * FROM item WHERE id = ?", (cursor.lastrowid,)).fetchone()
