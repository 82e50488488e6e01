"""The examples (examples/*.py) started as a user starts them, on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from sms2fa_middleware.testing import FakeFlowroute

from . import ROOT
from .servers import free_port

EXAMPLE_ALICE = "+12065550100"  # examples' USERS["alice"]


@contextmanager
def run_example(name: str, tmp_path: Path, fake_flowroute: FakeFlowroute) -> Iterator[str]:
    """The example started as a user would (``python examples/<name>``), on a free port."""
    port = free_port()
    env = {
        **os.environ,
        **fake_flowroute.settings_env(),
        "PORT": str(port),
        "SMS2FA_DATABASE_URL": f"sqlite:///{tmp_path / 'example.db'}",
    }
    env.pop("SMS2FA_SECRET_KEY", None)  # as tried from a fresh shell: development mode
    env["SMS2FA_DEVELOPMENT"] = "1"
    log = (tmp_path / "example.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / name)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "example.log").read_text()
            try:
                requests.get(base + "/", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the example did not start"
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
