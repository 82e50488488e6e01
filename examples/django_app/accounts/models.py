from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """Django's user with the mobile number the codes go to (E.164, or national)."""

    phone_number = models.CharField(max_length=32, blank=True)
