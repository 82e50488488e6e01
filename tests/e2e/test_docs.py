"""The documentation, held to the code: every option, setting and environment variable is in
the docs' tables (and nothing else is), every Python block of the README runs -- and does what
the README says, against a real app -- and the MkDocs site builds with ``--strict``."""

from __future__ import annotations

import ast
import dataclasses
import html
import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sms2fa_middleware import Identity, Settings
from sms2fa_middleware.guard import GuardOptions
from sms2fa_middleware.guard.app import GuardedApp
from sms2fa_middleware.settings import env_name
from sms2fa_middleware.testing import FakeFlowroute, mark_verified

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PACKAGE = ROOT / "sms2fa_middleware"
PHONE = "+12065550123"

# -- the tables -------------------------------------------------------------------------------


def _cells(line: str) -> list[str]:
    """A Markdown table row's cells; a `|` inside backticks or escaped stays in its cell."""
    cells, cell, code, previous = [], "", False, ""
    for char in line.strip().strip("|"):
        if char == "`":
            code = not code
        if char == "|" and not code and previous != "\\":
            cells.append(cell.strip())
            cell = ""
        else:
            cell += char
        previous = char
    return [*cells, cell.strip()]


def _table(page: str, first_header: str) -> list[list[str]]:
    """The rows of the table on ``page`` whose first column is headed ``first_header``."""
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if line.startswith("|") and _cells(line)[0] == first_header:
            rows = []
            for row in lines[number + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(_cells(row))
            return rows
    raise AssertionError(f"{page}: no table headed {first_header!r}")


def _name(cell: str) -> str:
    found = re.fullmatch(r"`([\w.]+)`", cell)
    assert found, f"not a single `name`: {cell!r}"
    return found[1]


def test_every_middleware_option_is_in_the_options_table_and_nothing_else() -> None:
    documented = [_name(row[0]) for row in _table("options.md", "option")]
    assert len(documented) == len(set(documented)), "an option is listed twice"
    assert set(documented) == GuardOptions.names()


def test_the_adapters_own_arguments_are_in_their_table() -> None:
    documented = {_name(row[0]) for row in _table("options.md", "argument")}
    parameters = inspect.signature(GuardedApp.__init__).parameters
    assert documented == set(parameters) - {"self", "app", "options"}


def test_the_django_dicts_own_keys_are_in_its_table() -> None:
    """Keys of ``SMS2FA`` that are not options: the ones Django's configuration takes out
    before the rest become :class:`GuardOptions`."""
    documented = {_name(row[0]) for row in _table("django.md", "key")}
    source = (PACKAGE / "django" / "conf.py").read_text()
    assert documented == set(re.findall(r'options\.pop\("(\w+)"', source))
    assert not documented & GuardOptions.names()


def test_every_settings_field_is_in_the_settings_table_with_its_variable() -> None:
    rows = _table("settings.md", "field")
    documented = {_name(row[0]): _name(row[1]) for row in rows}
    assert len(documented) == len(rows), "a field is listed twice"
    assert set(documented) == {f.name for f in dataclasses.fields(Settings)}
    for field, variable in documented.items():
        assert variable == env_name(field), field


def _environment_names_in_the_code() -> set[str]:
    """Every string constant of the package that is a whole ``SMS2FA_*`` or ``FLOWROUTE_*``
    name: the variables read (and set) outside ``Settings``' own loop, and Django settings."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and re.fullmatch(r"(SMS2FA|FLOWROUTE)_[A-Z0-9_]+", node.value)
            ):
                names.add(node.value)
    return names


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    in_settings = {env_name(f.name) for f in dataclasses.fields(Settings)}
    other = {_name(row[0]) for row in _table("settings.md", "environment variable")}
    django_settings = {"SMS2FA_PUBLIC_ROUTES"}  # a Django setting, in django.md
    in_code = _environment_names_in_the_code()
    assert in_code - in_settings - django_settings == other
    assert not other & in_settings
    for name in django_settings:
        assert name in in_code
        assert name in (DOCS / "django.md").read_text()


# -- the README ------------------------------------------------------------------------------


def test_the_readme_is_a_front_page_whose_links_resolve() -> None:
    """Short, and every relative link (the docs pages, on GitHub as in a checkout) names a
    file of the repository, with its anchor when it gives one."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200
    links = re.findall(r"\]\(([^)#\s]+)(?:#([^)\s]+))?\)", text)
    relative = [(target, anchor) for target, anchor in links if "://" not in target]
    assert {t for t, _ in relative} >= {f"docs/{p.name}" for p in DOCS.glob("*.md")}
    for target, anchor in relative:
        assert (ROOT / target).exists(), target
        if anchor:
            headings = re.findall(r"^#+ (.+)$", (ROOT / target).read_text(), re.M)
            slugs = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{target}#{anchor}"


# -- the README's Python blocks ---------------------------------------------------------------


def _readme_blocks() -> list[tuple[str, str]]:
    """(the ``##`` heading it sits under, the code) for each Python block of the README."""
    blocks, heading = [], ""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for match in re.finditer(r"^## ([^\n]+)$|^```python\n(.*?)^```$", text, re.M | re.S):
        if match[1]:
            heading = match[1].strip()
        else:
            blocks.append((heading, match[2]))
    return blocks


# What a README block leaves to the reader's own app, supplied here: the app it wraps (with a
# view that shows the identity), the user lookup, the session secret. Nothing of ours.
PRELUDES = {
    "Flask": f"""
from flask import Flask, request
from flask_login import LoginManager, UserMixin, login_user

app = Flask(__name__)
app.secret_key = "a session secret for this test only"
login_manager = LoginManager(app)

class User(UserMixin):
    def __init__(self, user_id):
        self.id, self.phone_number = user_id, "{PHONE}"

@login_manager.user_loader
def load_user(user_id):
    return User(user_id)

@app.get("/login-as/<name>")
def login_as(name):
    login_user(User(name))
    return "ok"

@app.get("/account")
def account():
    return request.environ["sms2fa.identity"].auth_id
""",
    "Starlette": f"""
from starlette.responses import PlainTextResponse
from starlette.routing import Route

SESSION_SECRET = "a session secret for this test only"

def phone_number_of(user_id):
    return "{PHONE}"

async def account(request):
    return PlainTextResponse(request.state.sms2fa.auth_id)

async def login_as(request):
    request.session["user_id"] = request.path_params["name"]
    return PlainTextResponse("ok")

routes = [Route("/account", account), Route("/login-as/{{name}}", login_as)]
""",
    "FastAPI": f"""
from typing import Annotated
from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel

class User(BaseModel):
    username: str
    phone: str

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")

async def current_user(token: Annotated[str, Depends(oauth2_scheme)]) -> User:
    return User(username=token, phone="{PHONE}")  # here a token names its user
""",
}

HTML = {"Accept": "text/html"}


def _check_flask(space: dict[str, Any], fake: FakeFlowroute) -> None:
    client = space["app"].test_client()
    anonymous = client.get("/account", headers=HTML)
    assert anonymous.status_code == 303
    assert anonymous.headers["Location"].startswith("/login?next=")
    client.get("/login-as/alice")
    unverified = client.get("/account", headers=HTML)
    assert unverified.status_code == 303
    assert "/sms2fa/challenge" in unverified.headers["Location"]
    assert fake.last_code(PHONE)  # the code went out
    mark_verified(client, space["app"], Identity("alice", PHONE))
    verified = client.get("/account", headers=HTML)
    assert (verified.status_code, verified.text) == (200, "alice")


def _check_starlette(space: dict[str, Any], fake: FakeFlowroute) -> None:
    from starlette.testclient import TestClient

    with TestClient(space["app"], follow_redirects=False) as client:
        anonymous = client.get("/account", headers=HTML)
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/login?next=")
        client.get("/login-as/alice")
        assert client.get("/account", headers=HTML).status_code == 303  # to the challenge
        mark_verified(client, space["app"], Identity("alice", PHONE))
        verified = client.get("/account", headers=HTML)
        assert (verified.status_code, verified.text) == (200, "alice")


def _check_fastapi(space: dict[str, Any], fake: FakeFlowroute) -> None:
    """The README's claim too: a bearer client completes the factor with JSON alone."""
    from starlette.testclient import TestClient

    with TestClient(space["app"], follow_redirects=False) as client:
        assert client.get("/users/me").json()["reason"] == "LoginRequired"
        client.headers["Authorization"] = "Bearer alice"
        refused = client.get("/users/me")
        assert (refused.status_code, refused.json()["reason"]) == (401, "VerificationRequired")
        assert client.post("/sms2fa/challenge/send", json={}).status_code == 200
        done = client.post("/sms2fa/challenge", json={"code": fake.last_code(PHONE)})
        assert done.json()["verified"] is True
        me = client.get("/users/me")
        assert (me.status_code, me.json()) == (200, {"username": "alice", "phone": PHONE})


def _check_django(space: dict[str, Any], fake: FakeFlowroute) -> None:
    """The settings fragment names importable middleware in the documented order, and its
    ``SMS2FA`` dict is valid: options plus Django's own keys, no unknown one."""
    pytest.importorskip("django")
    middleware = [m for m in space["MIDDLEWARE"] if isinstance(m, str)]
    ours = "sms2fa_middleware.django.SMS2FAMiddleware"
    assert middleware.index(ours) > middleware.index(
        "django.contrib.auth.middleware.AuthenticationMiddleware"
    )
    module, _, name = ours.rpartition(".")
    assert hasattr(importlib.import_module(module), name)
    assert "sms2fa_middleware.django" in space["INSTALLED_APPS"]
    django_keys = {"identify", "settings", "phone_attribute", "protect_views"}
    options = GuardOptions.from_mapping(space["SMS2FA"], ignore=django_keys)
    assert options.protect == ("/account",)


CHECKS = {
    "Flask": _check_flask,
    "Starlette": _check_starlette,
    "FastAPI": _check_fastapi,
    "Django": _check_django,
}


def test_the_readme_has_a_python_example_for_each_integration() -> None:
    assert {heading for heading, _ in _readme_blocks()} == set(CHECKS)


@pytest.mark.parametrize(("heading", "code"), _readme_blocks(), ids=lambda v: v[:20])
def test_each_python_block_of_the_readme_runs(
    heading: str, code: str, sms2fa_env: dict[str, str], fake_flowroute: FakeFlowroute
) -> None:
    space: dict[str, Any] = {"__name__": f"readme_{heading.lower()}"}
    exec(compile(PRELUDES.get(heading, ""), "<prelude>", "exec"), space)
    exec(compile(code, f"README.md ({heading})", "exec"), space)
    CHECKS[heading](space, fake_flowroute)


# -- the site ---------------------------------------------------------------------------------


def _mkdocs_missing() -> str | None:
    for module in ("mkdocs", "material"):  # found, not imported: the build runs apart
        if importlib.util.find_spec(module) is None:
            return module
    return None


def test_the_site_builds_strictly_offline_with_the_api_reference(tmp_path: Path) -> None:
    """``mkdocs build --strict``: a broken link or anchor, a page missing from the nav or a
    warning fails. The API page carries every operation of the served OpenAPI document, and
    no page loads a script or a stylesheet from another host."""
    missing = _mkdocs_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing} is not installed (the `docs` extra, part of `test`)")
        pytest.skip(f"{missing} is not installed: pip install -e '.[docs]'")
    site = tmp_path / "site"
    # No -q: mkdocs' strict mode counts warnings through its log, which -q silences.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    from sms2fa_middleware.api.openapi import openapi_document

    api_page = html.unescape((site / "api" / "index.html").read_text(encoding="utf-8"))
    for path, operations in openapi_document(api=True, challenge=True, recovery_codes=True)[
        "paths"
    ].items():
        for method, operation in operations.items():
            assert f"{method.upper()} {path}" in api_page
            assert operation["summary"] in api_page
            assert operation["operationId"] in api_page
    external = re.compile(r'<(?:script|link)\b[^>]*\b(?:src|href)="(?:https?:)?//')
    for page in site.rglob("*.html"):
        assert not external.search(page.read_text(encoding="utf-8")), page
