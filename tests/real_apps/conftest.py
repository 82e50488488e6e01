"""The apps here bring their own test suites, run by tests/test_real_apps_adopted.py in a
process of their own (their own pytest.ini, their own conftest): this suite collects none
of their files."""

collect_ignore_glob = ["*"]
