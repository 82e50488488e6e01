"""No route for the challenge pages: the middleware answers everything under /sms2fa."""

from accounts import views
from django.contrib.auth import views as auth_views
from django.urls import path

urlpatterns = [
    path("", views.home),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),  # revokes (a signal)
    path("account/", views.account, name="account"),
]
