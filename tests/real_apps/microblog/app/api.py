"""The API: tokens from HTTP Basic credentials, then ``Authorization: Bearer <token>``."""

from functools import wraps

from flask import Blueprint, abort, jsonify, request
from flask_login import current_user

from .models import User

bp = Blueprint("api", __name__)


def token_auth_required(view):
    """401 unless the request carries a valid bearer token (Flask-Login's request loader)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if request.authorization is None or request.authorization.type != "bearer":
            return jsonify(error="Unauthorized"), 401, {"WWW-Authenticate": "Bearer"}
        if not current_user.is_authenticated:
            return jsonify(error="Unauthorized"), 401, {"WWW-Authenticate": "Bearer"}
        return view(*args, **kwargs)

    return wrapper


@bp.route("/tokens", methods=["POST"])
def get_token():
    auth = request.authorization
    user = User.by_username(auth.username) if auth and auth.type == "basic" else None
    if user is None or not user.check_password(auth.password or ""):
        return jsonify(error="Unauthorized"), 401, {"WWW-Authenticate": 'Basic realm="api"'}
    return jsonify(token=user.get_token())


@bp.route("/tokens", methods=["DELETE"])
@token_auth_required
def revoke_token():
    current_user.revoke_token()
    return "", 204


@bp.route("/users/<int:id>", methods=["GET"])
@token_auth_required
def get_user(id):
    user = User.get(id)
    if user is None:
        abort(404)
    return jsonify(user.to_dict())


@bp.route("/users/<int:id>", methods=["PUT"])
@token_auth_required
def update_user(id):
    if current_user.id != id:
        abort(403)
    data = request.get_json(silent=True) or {}
    if "about_me" in data:
        current_user.set_about_me(str(data["about_me"])[:140])
    return jsonify(User.get(id).to_dict())
