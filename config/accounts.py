"""The first account: a one-time sign-up link while the installation has no account at all; the
password reset, whose emailed link points at LOUPE_PUBLIC_URL.

`make run` (and `manage.py first_run_link`) prints the link; it carries a token signed with the
secret key, so only someone who sees the server's output can use it, and it stops working the
moment any account exists. There is no default password anywhere. The account it makes is a
superuser in the supervisor role, who then adds the team in the admin.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model, login, password_validation
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.contrib.auth.models import Group
from django.core import signing
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from inspection.roles import SUPERVISOR
from inspection.services.access import account_changes_record
from inspection.throttling import client_address, failure_record, refusal_seconds, sign_in_counters

logger = logging.getLogger("loupe.security")

SALT = "loupe.first-run"
# A link printed at start-up stays good for a week of a fresh installation nobody signed into.
MAX_AGE_SECONDS = 7 * 24 * 3600


def first_run_pending() -> bool:
    """No account exists yet: the installation waits for its first person."""
    return not get_user_model().objects.exists()


def first_run_path() -> str:
    return reverse("first-run", kwargs={"token": signing.dumps("first-run", salt=SALT)})


def sign_in_hint(base_url: str) -> str:
    """What a person does first: make the first account with the one-time link, or sign in."""
    base = base_url.rstrip("/")
    if first_run_pending():
        return f"No account exists yet: make the first one (a supervisor) at {base}{first_run_path()}"
    return f"Sign in at {base}{reverse('login')}"


def _token_valid(token: str) -> bool:
    try:
        return signing.loads(token, salt=SALT, max_age=MAX_AGE_SECONDS) == "first-run"
    except signing.BadSignature:
        return False


class FirstAccountForm(forms.Form):
    username = forms.CharField(label="User name", max_length=150)
    password = forms.CharField(label="Password", widget=forms.PasswordInput, strip=False)
    password_again = forms.CharField(label="The password again", widget=forms.PasswordInput, strip=False)

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        if not username:
            raise forms.ValidationError("a user name is needed")
        return username

    def clean(self) -> dict:
        data = super().clean()
        password, again = data.get("password"), data.get("password_again")
        if password and again and password != again:
            self.add_error("password_again", "the two passwords differ")
        elif password and "username" in data:
            user = get_user_model()(username=data["username"])
            try:
                password_validation.validate_password(password, user)
            except forms.ValidationError as error:
                self.add_error("password", error)
        return data


def first_run(request: HttpRequest, token: str) -> HttpResponse:
    if not _token_valid(token):
        raise Http404("this sign-up link is not valid: run `python manage.py first_run_link` for one")
    if not first_run_pending():
        return render(request, "registration/first_run_done.html", status=410)
    form = FirstAccountForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            user = get_user_model().objects.create_superuser(
                username=form.cleaned_data["username"], email="", password=form.cleaned_data["password"]
            )
            user.groups.add(Group.objects.get(name=SUPERVISOR))
            account_changes_record(account=user, before=None, user=None, note="first-run link")
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("home")
    return render(request, "registration/first_run.html", {"form": form})


class SignInView(auth_views.LoginView):
    """Django's sign-in, saying how to make the first account while there is none."""

    def get_context_data(self, **kwargs) -> dict:
        return {**super().get_context_data(**kwargs), "first_run": first_run_pending()}


class PublicUrlPasswordResetForm(PasswordResetForm):
    """Django's reset form, its emailed link on LOUPE_PUBLIC_URL: never the request's Host header,
    which whoever asks for the reset chooses (and would receive the victim's reset token)."""

    def save(self, **options) -> None:
        public = urlsplit(settings.LOUPE_PUBLIC_URL)
        options["domain_override"] = public.netloc + public.path.rstrip("/")
        options["use_https"] = public.scheme == "https"
        super().save(**options)


class PasswordResetView(auth_views.PasswordResetView):
    form_class = PublicUrlPasswordResetForm


def sign_in_throttled(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A sign-in door (ours, the admin's) that counts wrong passwords per client and per user
    name (`inspection.throttling`): past the limit the form answers 429, saying how long to wait,
    without checking the password at all. Each refusal and each failure is logged."""

    def throttled(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        username, client = request.POST.get("username", ""), client_address(request.META)
        counters = sign_in_counters(client, username)
        wait = refusal_seconds(counters)
        if wait is not None:
            logger.warning(
                "sign-in refused: too many failures (user %r, client %s); retry in %d s",
                username,
                client,
                wait,
            )
            context = {"form": AuthenticationForm(request), "throttled_minutes": max(1, round(wait / 60))}
            response = render(request, "registration/login.html", context, status=429)
            response["Retry-After"] = str(wait)
            return response
        response = view(request, *args, **kwargs)
        if response.status_code == 200:  # the form again: the user name and password did not match
            failure_record(counters)
            logger.warning("sign-in failed: user %r, client %s", username, client)
        return response

    return throttled


sign_in = sign_in_throttled(SignInView.as_view())
