"""The one decision (guard/decision.py), over every combination of its inputs: what identify
gave, the path's kind, the anonymous mode, the cookie, the scheme. No framework is imported:
these run in well under a second and pin what every adapter then only translates."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest

from sms2fa_middleware import Identity, Settings
from sms2fa_middleware.guard import PREFIX, PROTECTED, Guard
from sms2fa_middleware.guard.decision import INTERNAL_ERROR, POLICY_VIOLATION, Answer, Verdict
from tests.support import ROOT

ALICE = Identity("alice", "+12065551234")
BOB = Identity("bob", "+12065551235")
NO_PHONE = Identity("carol", None)


@pytest.fixture(scope="module")
def guards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Guard]:
    url = f"sqlite:///{tmp_path_factory.mktemp('decision') / 'd.db'}"
    settings = Settings(
        secret_key="decision-tests-" * 3, database_url=url, sms_backend="console", development=True
    )
    return {
        mode: Guard(settings, protect=["/account"], anonymous=mode, private_responses=private)
        for mode, private in (("guard", True), ("app", False))
    }


def _cookies(guard: Guard) -> dict[str, str]:
    """Cookie headers by what they hold, for http and https."""
    out = {"none": "", "junk": "sms2fa=1.2.3; other=x"}
    for https in (False, True):
        name = guard.cookie_for(https)
        out[f"alice-{https}"] = f"{name}={guard.sessions.issue(ALICE)}"
    return out


IDENTITIES = {"anonymous": None, "alice": ALICE, "bob": BOB, "no phone": NO_PHONE}


def _expected(kind: int, who: str, failed: bool, mode: str, cookie: str, https: bool) -> Verdict:
    identity = IDENTITIES[who]
    if failed:
        return Verdict(False, answer=Answer.IDENTIFY_FAILED, failure=FAILURE)
    if kind == PREFIX:
        return Verdict(False, identity, answer=Answer.PREFIX)
    if identity is None and mode == "app":
        return Verdict(True)
    if who == "alice" and cookie == f"alice-{https}":  # her cookie, on the scheme it was set for
        return Verdict(True, ALICE, private=mode == "guard")
    return Verdict(False, identity, answer=Answer.DENY)


FAILURE = RuntimeError("identify broke")


def test_every_combination(guards: dict[str, Guard]) -> None:
    checked = 0
    for mode, guard in guards.items():
        cookies = _cookies(guard)
        for kind, who, failed, cookie, https in itertools.product(
            (PROTECTED, PREFIX), IDENTITIES, (False, True), cookies, (False, True)
        ):
            verdict = guard.decide(
                kind, IDENTITIES[who], FAILURE if failed else None, cookies[cookie], https
            )
            assert verdict == _expected(kind, who, failed, mode, cookie, https), (
                mode,
                kind,
                who,
                failed,
                cookie,
                https,
            )
            checked += 1
    assert checked == 2 * 2 * 4 * 2 * 4 * 2  # modes, kinds, who, failed, cookies, scheme


def test_what_the_adapters_read_off_a_verdict() -> None:
    failed = Verdict(False, answer=Answer.IDENTIFY_FAILED, failure=FAILURE)
    assert (failed.close_code, failed.reads_body) == (INTERNAL_ERROR, False)
    prefix = Verdict(False, answer=Answer.PREFIX)
    assert (prefix.close_code, prefix.reads_body) == (POLICY_VIOLATION, True)
    assert Verdict(False, answer=Answer.DENY).reads_body is False


@pytest.mark.server
def test_no_framework_is_imported() -> None:
    """The decision and the guard load without werkzeug, starlette or Django."""
    code = (
        "import sys, sms2fa_middleware.guard.decision, sms2fa_middleware.guard; "
        "print(sorted(m for m in ('werkzeug', 'starlette', 'django', 'flask', 'fastapi') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert out.stdout.strip() == "[]"
