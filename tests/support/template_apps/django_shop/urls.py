"""The Django shop's URLs; its static files are served by Django itself (tests only)."""

from django.urls import path, re_path
from django.views.static import serve

from .settings import HERE
from .views import account, login

urlpatterns = [
    path("login", login),
    path("account", account),
    re_path(r"^static/(?P<path>.*)$", serve, {"document_root": str(HERE / "static")}),
]
