"""A URLconf shaped like MDN's "LocalLibrary" tutorial (catalog app, admin, accounts): many
public pages beside protected create/update/delete/renew pages under ``/catalog``."""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def page(request: HttpRequest, **kwargs: object) -> HttpResponse:
    return HttpResponse("page")


catalog = [
    path("", page, name="index"),
    path("books/", page, name="books"),
    path("book/<int:pk>", page, name="book-detail"),
    path("authors/", page, name="authors"),
    path("author/<int:pk>", page, name="author-detail"),
    path("mybooks/", page, name="my-borrowed"),
    path("borrowed/", page, name="all-borrowed"),
    path("book/<uuid:pk>/renew/", page, name="renew-book-librarian"),
    path("author/create/", page, name="author-create"),
    path("author/<int:pk>/update/", page, name="author-update"),
    path("author/<int:pk>/delete/", page, name="author-delete"),
    path("book/create/", page, name="book-create"),
    path("book/<int:pk>/update/", page, name="book-update"),
    path("book/<int:pk>/delete/", page, name="book-delete"),
    path("genres/", page, name="genres"),
    path("genre/<int:pk>", page, name="genre-detail"),
    path("genre/create/", page, name="genre-create"),
    path("genre/<int:pk>/update/", page, name="genre-update"),
    path("genre/<int:pk>/delete/", page, name="genre-delete"),
    path("languages/", page, name="languages"),
    path("language/<int:pk>", page, name="language-detail"),
    path("language/create/", page, name="language-create"),
    path("language/<int:pk>/update/", page, name="language-update"),
    path("language/<int:pk>/delete/", page, name="language-delete"),
    path("bookinstances/", page, name="bookinstances"),
    path("bookinstance/<uuid:pk>", page, name="bookinstance-detail"),
    path("bookinstance/create/", page, name="bookinstance-create"),
    path("bookinstance/<uuid:pk>/update/", page, name="bookinstance-update"),
    path("bookinstance/<uuid:pk>/delete/", page, name="bookinstance-delete"),
]

admin = [
    path("", page, name="index"),
    path("login/", page, name="login"),
    path("catalog/book/", page, name="books"),
    path("catalog/book/<int:pk>/change/", page, name="book-change"),
]

accounts = [
    path("login/", page, name="login"),
    path("logout/", page, name="logout"),
    path("password_reset/", page, name="password_reset"),
]

urlpatterns = [
    path("admin/", include((admin, "admin"))),
    path("catalog/", include((catalog, "catalog"))),
    path("", page, name="home"),
    path("accounts/", include((accounts, "accounts"))),
    path("sms2fa/", page),  # the middleware answers its own pages
]

#: The pages the tutorial keeps to librarians and logged-in readers.
PROTECT = [
    "/catalog/*/create",
    "/catalog/*/*/update",
    "/catalog/*/*/delete",
    "/catalog/book/*/renew",
    "/catalog/mybooks",
    "/catalog/borrowed",
    "/admin",
]
