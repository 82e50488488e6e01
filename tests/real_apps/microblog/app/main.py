"""The blog: the home page (posts), user pages and the profile editor."""

from flask import Blueprint, abort, flash, redirect, render_template_string, request, url_for
from flask_login import current_user, login_required

from .db import get_db
from .models import User

bp = Blueprint("main", __name__)

INDEX = """<!doctype html><title>Home - Microblog</title>
{% for m in get_flashed_messages() %}<p class=flash>{{ m }}</p>{% endfor %}
<h1>Hi, {{ current_user.username }}!</h1>
<form method=post><textarea name=post></textarea><button>Submit</button></form>
{% for p in posts %}<p class=post>{{ p['username'] }} says: {{ p['body'] }}</p>{% endfor %}"""

USER = """<!doctype html><title>{{ user.username }}</title><h1>User: {{ user.username }}</h1>
<p class=about>{{ user.about_me }}</p>"""

EDIT = """<!doctype html><title>Edit Profile</title><h1>Edit Profile</h1>
{% for m in get_flashed_messages() %}<p class=flash>{{ m }}</p>{% endfor %}
<form method=post><textarea name=about_me>{{ current_user.about_me }}</textarea>
<button>Submit</button></form>"""


@bp.route("/", methods=["GET", "POST"])
@bp.route("/index", methods=["GET", "POST"])
@login_required
def index():
    db = get_db()
    if request.method == "POST" and request.form.get("post", "").strip():
        db.execute(
            "INSERT INTO post (body, user_id) VALUES (?, ?)",
            (request.form["post"].strip(), current_user.id),
        )
        db.commit()
        flash("Your post is now live!")
        return redirect(url_for("main.index"))
    posts = db.execute(
        "SELECT p.body, u.username FROM post p JOIN user u ON p.user_id = u.id "
        "ORDER BY p.timestamp DESC, p.id DESC"
    ).fetchall()
    return render_template_string(INDEX, posts=posts)


@bp.route("/user/<username>")
@login_required
def user(username):
    found = User.by_username(username)
    if found is None:
        abort(404)
    return render_template_string(USER, user=found)


@bp.route("/edit_profile", methods=["GET", "POST"])
@login_required
def edit_profile():
    if request.method == "POST":
        current_user.set_about_me(request.form.get("about_me", "")[:140])
        flash("Your changes have been saved.")
        return redirect(url_for("main.edit_profile"))
    return render_template_string(EDIT)
