import datetime
import uuid

from catalog.models import Author, Book, BookInstance, Genre, Profile
from django.contrib.auth.models import Permission, User
from django.test import TestCase
from django.urls import reverse

from sms2fa_middleware import Identity
from sms2fa_middleware.django import SMS2FAMiddleware
from sms2fa_middleware.testing import assume_verified, mark_verified


def reader(username, phone="", *permissions):
    user = User.objects.create_user(username=username, password="1X<ISRUkw+tuK")
    Profile.objects.create(user=user, phone=phone)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def verified(client, user):
    """Log in and pass the SMS code, as the reader would with their phone."""
    client.login(username=user.username, password="1X<ISRUkw+tuK")
    mark_verified(client, SMS2FAMiddleware, Identity(user.pk, user.profile.phone))


class PublicPagesTest(TestCase):
    @classmethod
    def setUpTestData(cls):
        author = Author.objects.create(first_name="John", last_name="Smith")
        for number in range(13):
            Book.objects.create(
                title=f"Book {number}", summary="s", isbn=f"ISBN{number:05}", author=author
            )

    def test_index_counts_visits(self):
        response = self.client.get("/catalog/")
        self.assertContains(response, "visited this page 0 times")
        response = self.client.get(reverse("index"))
        self.assertContains(response, "visited this page 1 time.")

    def test_book_list_is_paginated(self):
        response = self.client.get(reverse("books"))
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response.context["is_paginated"])
        self.assertEqual(len(response.context["book_list"]), 10)

    def test_book_detail(self):
        response = self.client.get(reverse("book-detail", args=[1]))
        self.assertContains(response, "Title: Book 0")

    def test_author_list(self):
        self.assertContains(self.client.get(reverse("authors")), "Smith, John")


class LoanedBookInstancesByUserListViewTest(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.user1 = reader("testuser1", "+12065550151")
        cls.user2 = reader("testuser2", "+12065550152")
        author = Author.objects.create(first_name="John", last_name="Smith")
        book = Book.objects.create(
            title="Book Title", summary="My book summary", isbn="ABCDEFG", author=author
        )
        book.genre.set([Genre.objects.create(name="Fantasy")])
        for copy in range(30):
            BookInstance.objects.create(
                book=book,
                imprint="Unlikely Imprint, 2016",
                due_back=datetime.date.today() + datetime.timedelta(days=copy % 5),
                borrower=cls.user1 if copy % 2 else cls.user2,
                status="m",
            )

    def test_redirect_if_not_logged_in(self):
        response = self.client.get(reverse("my-borrowed"))
        self.assertRedirects(response, "/accounts/login/?next=/catalog/mybooks/")

    def test_logged_in_uses_correct_template(self):
        verified(self.client, self.user1)
        response = self.client.get(reverse("my-borrowed"))
        self.assertEqual(str(response.context["user"]), "testuser1")
        self.assertEqual(response.status_code, 200)
        self.assertTemplateUsed(response, "catalog/bookinstance_list_borrowed_user.html")

    def test_only_borrowed_books_in_list(self):
        verified(self.client, self.user1)
        response = self.client.get(reverse("my-borrowed"))
        self.assertEqual(len(response.context["bookinstance_list"]), 0)
        for copy in BookInstance.objects.all()[:10]:
            copy.status = "o"
            copy.save()
        response = self.client.get(reverse("my-borrowed"))
        for copy in response.context["bookinstance_list"]:
            self.assertEqual(response.context["user"], copy.borrower)
            self.assertEqual(copy.status, "o")

    def test_my_books_ask_for_the_sms_code(self):
        self.client.login(username="testuser1", password="1X<ISRUkw+tuK")
        response = self.client.get(reverse("my-borrowed"), headers={"accept": "text/html"})
        self.assertEqual(response.status_code, 303)
        self.assertTrue(response["Location"].startswith("/sms2fa/challenge?next="))

    def test_reader_without_a_phone(self):
        reader("nophone")
        self.client.login(username="nophone", password="1X<ISRUkw+tuK")
        with assume_verified(phone="+12065550159"):
            self.assertEqual(self.client.get(reverse("my-borrowed")).status_code, 200)


class RenewBookInstancesViewTest(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.user1 = reader("testuser1", "+12065550151")
        cls.user2 = reader("testuser2", "+12065550152", "can_mark_returned")
        book = Book.objects.create(title="Book Title", summary="s", isbn="ABCDEFG")
        cls.copy = BookInstance.objects.create(
            book=book,
            imprint="Unlikely Imprint, 2016",
            due_back=datetime.date.today() + datetime.timedelta(days=5),
            borrower=cls.user1,
            status="o",
        )

    def test_redirect_if_not_logged_in(self):
        response = self.client.get(reverse("renew-book-librarian", kwargs={"pk": self.copy.pk}))
        self.assertEqual(response.status_code, 302)
        self.assertTrue(response.url.startswith("/accounts/login/"))

    def test_forbidden_if_logged_in_but_not_correct_permission(self):
        verified(self.client, self.user1)
        response = self.client.get(reverse("renew-book-librarian", kwargs={"pk": self.copy.pk}))
        self.assertEqual(response.status_code, 403)

    def test_logged_in_with_permission_borrowed_book(self):
        verified(self.client, self.user2)
        response = self.client.get(reverse("renew-book-librarian", kwargs={"pk": self.copy.pk}))
        self.assertEqual(response.status_code, 200)
        proposed = datetime.date.today() + datetime.timedelta(weeks=3)
        self.assertEqual(response.context["form"].initial["renewal_date"], proposed)

    def test_404_for_invalid_book(self):
        verified(self.client, self.user2)
        response = self.client.get(reverse("renew-book-librarian", kwargs={"pk": uuid.uuid4()}))
        self.assertEqual(response.status_code, 404)

    def test_redirects_to_all_borrowed_book_list_on_success(self):
        verified(self.client, self.user2)
        valid = datetime.date.today() + datetime.timedelta(weeks=2)
        response = self.client.post(
            reverse("renew-book-librarian", kwargs={"pk": self.copy.pk}), {"renewal_date": valid}
        )
        self.assertRedirects(response, reverse("all-borrowed"))

    def test_form_invalid_renewal_date_future(self):
        verified(self.client, self.user2)
        invalid = datetime.date.today() + datetime.timedelta(weeks=5)
        response = self.client.post(
            reverse("renew-book-librarian", kwargs={"pk": self.copy.pk}), {"renewal_date": invalid}
        )
        self.assertFormError(
            response.context["form"],
            "renewal_date",
            "Invalid date - renewal more than 4 weeks ahead",
        )


class AuthorCreateViewTest(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.librarian = reader("librarian", "+12065550153", "add_author")

    def test_create_author(self):
        verified(self.client, self.librarian)
        response = self.client.post(
            reverse("author-create"), {"first_name": "Ann", "last_name": "Leckie"}
        )
        self.assertRedirects(response, "/catalog/author/1")

    def test_logout_ends_the_verified_session(self):
        verified(self.client, self.librarian)
        self.assertEqual(self.client.get(reverse("author-create")).status_code, 200)
        self.client.post(reverse("logout"))
        self.client.login(username="librarian", password="1X<ISRUkw+tuK")
        response = self.client.get(reverse("author-create"), headers={"accept": "text/html"})
        self.assertEqual(response.status_code, 303)
