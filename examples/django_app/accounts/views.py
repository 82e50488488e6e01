from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from sms2fa_middleware.django import verified_required


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse('<p><a href="/account/">Your account</a></p>')


@verified_required  # defence in depth: refuses (403) a request the middleware did not verify
def account(request: HttpRequest) -> HttpResponse:
    # request.sms2fa is the verified Identity (auth_id is str(user.pk)).
    return render(request, "account.html", {"identity": request.sms2fa})
