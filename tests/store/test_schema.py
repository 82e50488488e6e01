"""The store's schema and time: created safely by threads at once, purged of unchecked
codes, timestamps timezone-aware UTC.

From the defects of the original Flowroute sms-verification service."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select, update

from sms2fa_middleware import (
    Verifier,
)
from sms2fa_middleware.store import codes, metadata
from sms2fa_middleware.testing import FakeFlowroute
from tests.support import NO_BUDGETS, Client
from tests.support.databases import create_schema_concurrently, table_names

with warnings.catch_warnings():  # starlette >= 1.0 would rather have httpx2
    warnings.simplefilter("ignore")


pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


NUMBER = "12065551234"


def _expire_all(verifier: Verifier) -> None:
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    verifier.store.run(lambda conn: conn.execute(update(codes).values(expires_at=past)))


def test_unchecked_codes_are_purged(
    make_verifier: Callable[..., Verifier], fake_flowroute: FakeFlowroute
) -> None:
    """Defect: "Codes that are never checked stay in the database forever." (``sms2fa purge``
    is tested in e2e/test_cli.py.)"""
    verifier = make_verifier(**NO_BUDGETS)
    verifier.start("u1", NUMBER)
    verifier.start("u2", NUMBER)
    _expire_all(verifier)
    verifier.start("u3", NUMBER)  # live: stays
    assert verifier.store.count_codes() == 3
    assert verifier.purge() >= 2
    assert verifier.store.count_codes() == 1
    assert verifier.pending("u3") is not None
    # Without anyone calling purge(): a new process purges on its first start, in a thread
    # of its own (the start does not wait for it).
    _expire_all(verifier)
    other = make_verifier(**NO_BUDGETS)
    other.start("u4", NUMBER)
    deadline = time.monotonic() + 10
    while other.store.count_codes() > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert other.store.count_codes() == 1
    assert other.pending("u4") is not None


# -- "Starting 4 workers on a new database crashes (`table auth_code already exists`)" --------


def test_schema_creation_in_parallel_threads(database_url: str) -> None:
    """Defect: "Starting 4 workers on a new database crashes (`table auth_code already
    exists`): schema creation races." Threads here; processes in e2e/test_multiprocess.py."""
    errors = create_schema_concurrently(database_url, 4)
    assert errors == []
    assert {t.name for t in metadata.sorted_tables} <= table_names(database_url)


# -- "Naive UTC timestamps; DEBUG_MODE hard-coded; the test database selected by a flag in
#    code." -------------------------------------------------------------------------------------


def test_timestamps_are_timezone_aware_utc(
    make_client: Client,
) -> None:
    """Defect: "Naive UTC timestamps"."""
    api, verifier = make_client()
    response = api.post("/", json={"auth_id": "u1", "recipient": NUMBER})
    expires_at = response.json()["expires_at"]
    assert expires_at.endswith("Z")
    parsed = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None
    row = verifier.store.run(lambda conn: conn.execute(select(codes)).one())
    for value in (row.created_at, row.expires_at):
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
    assert abs(row.expires_at - parsed) < timedelta(seconds=1)
    if verifier.store.dialect == "postgresql":
        columns = {
            c["name"]: c["type"]
            for c in sa_inspect(verifier.store.engine).get_columns("sms2fa_codes")
        }
        assert columns["expires_at"].timezone is True
    # The store refuses naive datetimes outright rather than guessing their zone.
    with pytest.raises(Exception, match="naive"):
        verifier.store.run(
            lambda conn: conn.execute(
                update(codes).values(expires_at=datetime.now(timezone.utc).replace(tzinfo=None))
            )
        )
