"""The app for ``flask run`` and servers: ``gunicorn microblog:app``."""

from app import create_app

app = create_app()
