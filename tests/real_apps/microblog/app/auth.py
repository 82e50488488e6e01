"""Register, log in (with "remember me"), log out."""

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template_string, request, url_for
from flask_login import current_user, login_user, logout_user

from .models import User

bp = Blueprint("auth", __name__, url_prefix="/auth")

LOGIN = """<!doctype html><title>Sign In</title>
{% for m in get_flashed_messages() %}<p class=flash>{{ m }}</p>{% endfor %}
<form method=post><input name=username><input name=password type=password>
<label><input type=checkbox name=remember_me> Remember Me</label><button>Sign In</button></form>"""

REGISTER = """<!doctype html><title>Register</title>
{% for m in get_flashed_messages() %}<p class=flash>{{ m }}</p>{% endfor %}
<form method=post><input name=username><input name=email><input name=phone>
<input name=password type=password><button>Register</button></form>"""


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    if request.method == "POST":
        user = User.by_username(request.form.get("username", ""))
        if user is None or not user.check_password(request.form.get("password", "")):
            flash("Invalid username or password")
            return redirect(url_for("auth.login"))
        login_user(user, remember=bool(request.form.get("remember_me")))
        next_page = request.args.get("next")
        if not next_page or urlsplit(next_page).netloc != "":
            next_page = url_for("main.index")
        return redirect(next_page)
    return render_template_string(LOGIN)


@bp.route("/logout")
def logout():
    if current_user.is_authenticated:
        # Every verified session of this user ends (all devices), and this browser's cookie.
        guard = request.environ["sms2fa.middleware"]
        guard.revoke(current_user.get_id())
        deleted = guard.revoke_session(request)
    else:
        deleted = []
    logout_user()
    response = redirect(url_for("main.index"))
    for name, value in deleted:
        response.headers.add(name, value)
    return response


@bp.route("/register", methods=["GET", "POST"])
def register():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        email = request.form.get("email", "").strip()
        if not username or not email or not request.form.get("password"):
            flash("Username, email and password are required.")
        elif User.by_username(username) is not None:
            flash("Please use a different username.")
        else:
            User.create(
                username, email, request.form["password"], request.form.get("phone") or None
            )
            flash("Congratulations, you are now a registered user!")
            return redirect(url_for("auth.login"))
    return render_template_string(REGISTER)
