from catalog.models import Author, Book
from django.test import TestCase


class AuthorModelTest(TestCase):
    @classmethod
    def setUpTestData(cls):
        Author.objects.create(first_name="Big", last_name="Bob")

    def test_object_name_is_last_name_comma_first_name(self):
        author = Author.objects.get(id=1)
        self.assertEqual(str(author), "Bob, Big")

    def test_get_absolute_url(self):
        author = Author.objects.get(id=1)
        self.assertEqual(author.get_absolute_url(), "/catalog/author/1")


class BookModelTest(TestCase):
    def test_isbn_label(self):
        self.assertEqual(Book._meta.get_field("isbn").verbose_name, "ISBN")
