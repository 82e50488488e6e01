"""Run the Django TestCases under pytest: Django set up once, a test database for the run."""

import os

import django
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "locallibrary.settings")
django.setup()


@pytest.fixture(scope="session", autouse=True)
def django_test_database():
    from django.test.runner import DiscoverRunner
    from django.test.utils import setup_test_environment, teardown_test_environment

    runner = DiscoverRunner(verbosity=0, interactive=False)
    setup_test_environment()
    old_config = runner.setup_databases()
    yield
    runner.teardown_databases(old_config)
    teardown_test_environment()


@pytest.fixture(autouse=True)
def _sms2fa(sms2fa_env):  # the SMS second factor's settings: a fake SMS API, a temp file
    pass
