"""Languages: the pages, errors and SMS in the request's language (``Accept-Language``, or
the ``language`` option), the shipped catalogues complete and compiled, and no language
leaking between concurrent requests. Sans-IO: the guard with a real SQLite file and
FakeFlowroute, no server."""

from __future__ import annotations

import asyncio
import gettext
import io
import json
import logging
import string
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

import sms2fa_middleware
from sms2fa_middleware import Identity, Settings, languages, text
from sms2fa_middleware.guard import Guard, GuardOptions
from sms2fa_middleware.messages import Request
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import SECRET

ALICE = Identity("alice", "+12065551234")
HTML = "text/html,application/xhtml+xml"
PACKAGE = Path(sms2fa_middleware.__file__).parent
LOCALE = PACKAGE / "locale"
TRANSLATED = [code for code in languages.SHIPPED if code != languages.DEFAULT]


@pytest.fixture
def make_guard(tmp_path: Path, fake_flowroute: FakeFlowroute) -> Iterator[Callable[..., Guard]]:
    made: list[Guard] = []

    def build(**options: Any) -> Guard:
        settings = Settings(
            secret_key=SECRET,
            database_url=f"sqlite:///{tmp_path / f'g{len(made)}.db'}",
            resend_cooldown=0,
            **fake_flowroute.settings_kwargs(),
        )
        guard = Guard(settings, protect=["/account"], login_url="/login", **options)
        made.append(guard)
        return guard

    yield build
    for guard in made:
        guard.verifier.store.dispose()


def _challenge(guard: Guard, accept_language: str, who: Identity = ALICE) -> str:
    """Ask for /account as a browser in ``accept_language`` (a code is sent), then show
    the challenge page; its HTML."""
    headers = {"accept": HTML, "accept-language": accept_language}
    first = guard.deny(Request("GET", "/account", headers=headers), who)
    assert first.status == 303
    page = guard.handle_prefix(Request("GET", "/sms2fa/challenge", "next=/account", headers), who)
    assert page.status == 200
    return page.body.decode()


# -- negotiation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        ("es", "es"),
        ("es-MX,es;q=0.9,en;q=0.8", "es"),
        ("fr;q=0.5, de;q=0.8", "de"),  # the q-value decides, not the order
        ("en;q=0, es", "es"),
        ("de;q=0", "en"),  # q=0: "not this one"
        ("pt", "pt_BR"),
        ("pt-BR", "pt_BR"),
        ("pt-PT", "pt_BR"),  # the Portuguese we have
        ("zh-CN, ar;q=0.3", "ar"),  # the best of the shipped ones
        ("AR-eg", "ar"),
        ("zz, xx;q=0.9", "en"),
        ("*", "en"),
        ("", "en"),
        (";;q=x,,=", "en"),  # malformed: English, no error
    ],
)
def test_accept_language_is_negotiated_by_quality(header: str, chosen: str) -> None:
    assert languages.negotiate(header) == chosen


def test_an_override_names_a_shipped_language_or_is_ignored() -> None:
    assert languages.choose("pt-br", "de") == "pt_BR"
    assert languages.choose(None, "de") == "de"
    assert languages.choose("tlh", "de") == "de"  # not shipped: the header decides


# -- pages and the SMS -----------------------------------------------------------------------


def test_spanish_page_and_spanish_sms(
    make_guard: Callable[..., Guard], fake_flowroute: FakeFlowroute
) -> None:
    body = _challenge(make_guard(), "es-ES,es;q=0.9,en;q=0.5")
    assert '<html lang="es" dir="ltr">' in body
    assert "<title>Escribe tu código de verificación</title>" in body
    assert "Revisa tu teléfono" in body
    assert "Te quedan 3 intentos." in body  # the plural, from the Spanish catalogue
    assert "Enviar un código nuevo" in body
    assert "Check your phone" not in body
    [sms] = fake_flowroute.messages
    assert sms.body.startswith("Tu código de verificación es ")
    assert "No lo compartas con nadie." in sms.body
    assert fake_flowroute.last_code(ALICE.recipient or "")  # the code is still found in it


def test_english_by_default(
    make_guard: Callable[..., Guard], fake_flowroute: FakeFlowroute
) -> None:
    body = _challenge(make_guard(), "")
    assert '<html lang="en" dir="ltr">' in body and "3 attempts left." in body
    assert fake_flowroute.messages[0].body.startswith("Your verification code is ")


def test_arabic_is_right_to_left(
    make_guard: Callable[..., Guard], fake_flowroute: FakeFlowroute
) -> None:
    body = _challenge(make_guard(), "ar")
    assert '<html lang="ar" dir="rtl">' in body
    assert "تحقّق من هاتفك" in body
    assert "تبقّت 3 محاولات." in body  # 3-10: the "few" form
    assert '<strong dir="ltr">+1••••••••34</strong>' in body  # the number reads left to right
    assert fake_flowroute.messages[0].body.startswith("رمز التحقق الخاص بك هو ")


def test_brazilian_portuguese_tag(make_guard: Callable[..., Guard]) -> None:
    body = _challenge(make_guard(), "pt")
    assert '<html lang="pt-BR" dir="ltr">' in body and "Confira seu celular" in body


def test_an_error_page_and_a_json_answer_are_translated(make_guard: Callable[..., Guard]) -> None:
    guard = make_guard()
    post = guard.handle_prefix(
        Request(
            "POST",
            "/sms2fa/challenge",
            headers={"accept": HTML, "accept-language": "de", "content-type": "text/plain"},
            body=b"x",
        ),
        ALICE,
    )
    assert post.status == 400
    assert '<html lang="de" dir="ltr">' in post.body.decode()
    assert "Dieses Formular konnte nicht gelesen werden" in post.body.decode()
    api = guard.deny(
        Request("GET", "/account", headers={"accept": "application/json", "accept-language": "fr"}),
        ALICE,
    )
    assert api.status == 401
    assert json.loads(api.body)["message"] == "Cette ressource exige une vérification par SMS."


def test_the_sms_follows_the_request_that_asked_for_it(
    make_guard: Callable[..., Guard], fake_flowroute: FakeFlowroute
) -> None:
    guard = make_guard()
    _challenge(guard, "fr")
    _challenge(guard, "de", Identity("bob", "+12065550100"))
    by_number = {m.to: m.body for m in fake_flowroute.messages}
    assert by_number["12065551234"].startswith("Votre code de vérification est ")
    assert by_number["12065550100"].startswith("Ihr Bestätigungscode lautet ")


def test_an_org_name_and_an_own_message(tmp_path: Path, fake_flowroute: FakeFlowroute) -> None:
    """The default message with the org's name is translated; an app's own ``auth_message``
    is its text, sent as it is."""
    for n, (extra, expected) in enumerate(
        [
            ({"org_name": "Acme"}, "Tu código de verificación de Acme es "),
            ({"auth_message": "Code {code}"}, "Code "),
        ]
    ):
        settings = Settings(
            secret_key=SECRET,
            database_url=f"sqlite:///{tmp_path / f'o{n}.db'}",
            **extra,
            **fake_flowroute.settings_kwargs(),
        )
        guard = Guard(settings, protect=["/account"])
        try:
            _challenge(guard, "es", Identity(f"user{n}", f"+1206555010{n}"))
        finally:
            guard.verifier.store.dispose()
        assert fake_flowroute.messages[-1].body.startswith(expected)


# -- the app's choice ------------------------------------------------------------------------


def test_the_app_override_wins_over_the_header(
    make_guard: Callable[..., Guard], fake_flowroute: FakeFlowroute
) -> None:
    saved = {"alice": "fr", "bob": None}  # the user's saved language; bob has none
    seen: list[tuple[str, str | None]] = []

    def language(request: Request, identity: Identity | None) -> str | None:
        seen.append((request.path, None if identity is None else identity.auth_id))
        return saved.get(identity.auth_id) if identity is not None else None

    guard = make_guard(language=language)
    body = _challenge(guard, "es")
    assert '<html lang="fr" dir="ltr">' in body and "Consultez votre téléphone" in body
    assert fake_flowroute.messages[0].body.startswith("Votre code de vérification est ")
    assert ("/account", "alice") in seen
    bob = _challenge(guard, "es", Identity("bob", "+12065550100"))
    assert '<html lang="es"' in bob  # None: the header decides


def test_a_fixed_language(make_guard: Callable[..., Guard]) -> None:
    assert '<html lang="de"' in _challenge(make_guard(language="de"), "es")


def test_an_override_that_raises_falls_back_to_the_header(
    make_guard: Callable[..., Guard], caplog: pytest.LogCaptureFixture
) -> None:
    def language(request: Request, identity: Identity | None) -> str | None:
        raise LookupError("secret detail")

    with caplog.at_level(logging.ERROR, logger="sms2fa"):
        body = _challenge(make_guard(language=language), "es")
    assert '<html lang="es"' in body
    assert "LookupError" in caplog.text and "secret detail" not in caplog.text


@pytest.mark.parametrize("bad", ["xx", "klingon", 42])
def test_a_language_option_that_is_not_shipped_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="language"):
        GuardOptions(protect=["/a"], language=bad)


# -- plural forms ----------------------------------------------------------------------------


def test_arabic_has_its_six_plural_forms() -> None:
    with text.speaking("ar"):
        forms = [text.attempts_left(n) for n in (0, 1, 2, 3, 11, 100)]
        assert text.language() == "ar"
    assert forms == [
        "لم تتبقَّ أي محاولة.",
        "تبقّت محاولة واحدة.",
        "تبقّت محاولتان.",
        "تبقّت 3 محاولات.",
        "تبقّت 11 محاولة.",
        "تبقّت 100 محاولة.",
    ]
    assert text.language() == "en"  # back to English outside


@pytest.mark.parametrize(
    ("language", "one", "zero"),
    [
        ("fr", "1 tentative restante.", "0 tentative restante."),  # French: 0 is singular
        ("pt_BR", "1 tentativa restante.", "0 tentativa restante."),
        ("es", "Te queda 1 intento.", "Te quedan 0 intentos."),
        ("de", "Noch 1 Versuch.", "Noch 0 Versuche."),
    ],
)
def test_plural_rules_per_language(language: str, one: str, zero: str) -> None:
    with text.speaking(language):
        assert (text.attempts_left(1), text.attempts_left(0)) == (one, zero)


# -- the catalogues --------------------------------------------------------------------------


def _pot() -> Catalog:
    with open(LOCALE / "sms2fa.pot", "rb") as f:
        return read_po(f)


def _po(language: str) -> Catalog:
    with open(LOCALE / language / "LC_MESSAGES" / "sms2fa.po", "rb") as f:
        return read_po(f, locale=language)


def _fields(message: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(message) if name}


def test_the_pot_holds_every_message_of_text_py() -> None:
    """Extracting text.py again (babel.cfg's keywords) gives the committed .pot's ids: a
    sentence added to text.py fails here until the catalogues are updated."""
    keywords = {"_": None, "N_": None, "_n": (1, 2)}
    extracted = {
        message for _, message, _, _ in extract_from_file("python", PACKAGE / "text.py", keywords)
    }
    assert extracted == {m.id for m in _pot() if m.id}
    assert len(extracted) > 50


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated(language: str) -> None:
    po = _po(language)
    assert po.num_plurals == (6 if language == "ar" else 2)
    missing, broken = [], []
    for template in _pot():
        if not template.id:
            continue
        message = po.get(template.id)
        strings = () if message is None else message.string
        forms = strings if isinstance(strings, tuple) else (strings,)
        if message is None or message.fuzzy or not all(forms):
            missing.append(template.id)
            continue
        if isinstance(template.id, tuple):
            allowed = _fields(template.id[0]) | _fields(template.id[1])
            # Some forms may leave the number out ("one attempt"); none may invent a field.
            if len(forms) != po.num_plurals or any(_fields(f) - allowed for f in forms):
                broken.append(template.id)
        elif _fields(forms[0]) != _fields(template.id):
            broken.append(template.id)
    assert missing == [] and broken == []
    assert {m.id for m in po if m.id} == {m.id for m in _pot() if m.id}  # none left over


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_committed_mo_is_the_po_compiled(language: str) -> None:
    """Compile the .po with Babel again: the committed .mo must say the same (a .po edited
    without ``pybabel compile`` fails here)."""
    fresh = io.BytesIO()
    write_mo(fresh, _po(language))
    fresh.seek(0)
    compiled = gettext.GNUTranslations(fresh)
    shipped_mo = LOCALE / language / "LC_MESSAGES" / "sms2fa.mo"
    with open(shipped_mo, "rb") as f:
        committed = gettext.GNUTranslations(f)
    assert committed._catalog == compiled._catalog  # type: ignore[attr-defined]
    assert committed.plural(11) == compiled.plural(11)  # type: ignore[attr-defined]


def test_the_package_carries_its_compiled_catalogues() -> None:
    """The .mo files are package data, read where the package is installed (hatch puts every
    file of the package in the wheel): an install needs no compile step."""
    for language in TRANSLATED:
        mo = resources.files("sms2fa_middleware") / "locale" / language / "LC_MESSAGES"
        assert (mo / "sms2fa.mo").is_file()
        assert languages.translations(language).gettext("Verify") != "Verify"


# -- no leaking between concurrent requests --------------------------------------------------


def test_two_concurrent_requests_keep_their_languages(make_guard: Callable[..., Guard]) -> None:
    """Both requests are inside their language at the same moment (a barrier holds them
    there): a global switch would give one of them the other's language."""
    guard = make_guard()
    handle = guard.routes.handle
    barrier = threading.Barrier(2, timeout=10)

    def held(request: Request, identity: Identity | None) -> Any:
        barrier.wait()
        return handle(request, identity)

    guard.routes.handle = held  # type: ignore[method-assign]
    people = {"es": Identity("ana", "+12065550101"), "de": Identity("jan", "+12065550102")}

    def page(language: str) -> str:
        headers = {"accept": HTML, "accept-language": language}
        request = Request("GET", "/sms2fa/challenge", "next=/account", headers)
        return guard.handle_prefix(request, people[language]).body.decode()

    with ThreadPoolExecutor(2) as pool:
        for _ in range(5):
            es, de = pool.map(page, ["es", "de"])
            assert '<html lang="es"' in es and "Revisa tu teléfono" in es
            assert '<html lang="de"' in de and "Sehen Sie auf Ihr Telefon" in de


def test_concurrent_tasks_keep_their_languages() -> None:
    async def speak(language: str, other_started: asyncio.Event, started: asyncio.Event) -> str:
        with text.speaking(language):
            started.set()
            await other_started.wait()  # the other task is inside its language now
            return text.heading()

    async def both() -> list[str]:
        a, b = asyncio.Event(), asyncio.Event()
        return list(await asyncio.gather(speak("fr", b, a), speak("ar", a, b)))

    assert asyncio.run(both()) == ["Consultez votre téléphone", "تحقّق من هاتفك"]
    assert text.heading() == "Check your phone"


def test_the_settings_default_message_is_the_catalogues_english() -> None:
    """Settings.message_template (the HTTP API's SMS, the start-up segment warning) and the
    middleware's translated default are one sentence."""
    for org in ("", "Acme"):
        settings = Settings(secret_key=SECRET, sms_backend="console", org_name=org)
        assert settings.message_template == text.sms_template(org)


# -- through the adapters --------------------------------------------------------------------


def test_through_the_wsgi_and_asgi_middleware(
    make_settings: Callable[..., Settings], fake_flowroute: FakeFlowroute
) -> None:
    """The adapters' own path (the ASGI one answers in a worker thread): Flask in Spanish,
    Starlette in Arabic, each with its SMS."""
    import warnings

    from werkzeug.test import Client

    from tests.support.apps import flask_app, starlette_app
    from tests.support.browsing import USERS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    wsgi, flask_mw = flask_app(dict(USERS), make_settings(resend_cooldown=0))
    headers = {"X-User": "alice", "Accept": HTML, "Accept-Language": "es;q=0.9, en;q=0.1"}
    page = Client(wsgi).get("/account", headers=headers, follow_redirects=True)
    assert page.status_code == 200
    assert '<html lang="es" dir="ltr">' in page.text and "Revisa tu teléfono" in page.text
    assert fake_flowroute.messages[-1].body.startswith("Tu código de verificación es ")
    flask_mw.verifier.store.dispose()

    asgi, starlette_mw = starlette_app(dict(USERS), make_settings(resend_cooldown=0), [])
    headers = {"X-User": "bob", "Accept": HTML, "Accept-Language": "ar-SA"}
    with TestClient(asgi) as http:
        page = http.get("/account", headers=headers, follow_redirects=True)
    assert page.status_code == 200
    assert '<html lang="ar" dir="rtl">' in page.text and "تحقّق من هاتفك" in page.text
    assert fake_flowroute.messages[-1].body.startswith("رمز التحقق الخاص بك هو ")
    starlette_mw.verifier.store.dispose()
