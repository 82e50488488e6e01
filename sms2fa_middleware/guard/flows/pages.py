"""The challenge page: ``string.Template`` files that an app can override, filled with escaped text.

An app re-skins the page by passing ``template_dir=``: a ``challenge.html`` there replaces
ours. Placeholders: ``$masked_recipient`` (text), and the ready-made HTML fragments ``$lead``,
``$messages``, ``$code_form``, ``$resend_form``, ``$recovery_form`` (empty unless the user
has recovery codes), ``$logout`` (the "Change your phone number" link with ``on_enroll``,
and the "Log out" link with the ``logout_url`` option; else empty) and ``$script``,
the texts ``$title`` and ``$heading``, and ``$lang`` and ``$dir`` for ``<html>`` (the
request's language: ``pt-BR``; ``rtl`` for Arabic). Every sentence comes from
:mod:`sms2fa_middleware.text`, in the request's language.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from importlib import resources
from pathlib import Path
from string import Template

from ... import languages, text


@dataclass(frozen=True)
class ChallengeView:
    """Everything the page shows; nothing secret."""

    masked_recipient: str
    action: str  # where the form posts
    resend_action: str
    csrf_token: str
    next_url: str
    code_length: int
    attempts_left: int | None  # None: no live code
    resend_in: int  # seconds until a new code may be asked for
    error: str | None = None
    notice: str | None = None
    script_nonce: str = ""
    #: Why no new code may be asked for until the timer ends, when it is more than the
    #: cooldown after a send (a spent budget, a lock): shown unless an error says more.
    held: str | None = None
    logout_url: str | None = None  # the "Log out" link's target, ready to send
    recovery_left: int = 0  # unused recovery codes: their form shows when there are some
    trust_days: int = 0  # the "Trust this browser for N days" box shows when above 0
    #: The "Change your phone number" link's target (``{prefix}/phone``, with ``on_enroll``).
    change_number_url: str | None = None


class Pages:
    """Loads the templates once and renders views."""

    def __init__(self, template_dir: str | Path | None = None) -> None:
        self.challenge = Template(self._load("challenge.html", template_dir))

    @staticmethod
    def _load(name: str, template_dir: str | Path | None) -> str:
        if template_dir is not None:
            candidate = Path(template_dir) / name
            if candidate.is_file():
                return candidate.read_text(encoding="utf-8")
        return (resources.files("sms2fa_middleware") / "templates" / name).read_text("utf-8")

    def render_challenge(self, view: ChallengeView) -> bytes:
        hidden = (
            f'<input type="hidden" name="csrf_token" value="{escape(view.csrf_token)}">'
            f'<input type="hidden" name="next" value="{escape(view.next_url)}">'
        )
        # dir="ltr" isolates the number: on a right-to-left page "+1••••23" stays as it is.
        number = f'<strong dir="ltr">{escape(view.masked_recipient)}</strong>'
        lead = text.lead_sent(number) if view.attempts_left else text.lead_to_send(number)
        spoken = text.language()
        return self.challenge.safe_substitute(
            lang=languages.html_tag(spoken),
            dir=languages.direction(spoken),
            title=escape(text.page_title()),
            heading=escape(text.heading()),
            lead=f"<p>{lead}</p>",
            masked_recipient=escape(view.masked_recipient),
            messages=_messages(view),
            code_form=_code_form(view, hidden),
            resend_form=_resend_form(view, hidden),
            recovery_form=_recovery_form(view, hidden),
            logout=_change_number(view) + _logout(view),
            script=_script(view),
        ).encode("utf-8")


def _messages(view: ChallengeView) -> str:
    messages = ""
    if view.error:
        messages += f'<p class="error" role="alert" id="error">{escape(view.error)}</p>'
    if view.notice:
        messages += f'<p class="notice" role="status">{escape(view.notice)}</p>'
    if view.held and not view.error:
        messages += f'<p class="notice" role="status" id="held">{escape(view.held)}</p>'
    return messages


def _code_form(view: ChallengeView, hidden: str) -> str:
    if not view.attempts_left:
        return f'<p class="notice" role="status">{escape(text.ask_for_new_code())}</p>'
    # The field has the focus on load, so a screen reader reads it first: its description
    # (the error, if any, then the attempts left) is read with it.
    described = "error attempts" if view.error else "attempts"
    # Room for the spaces and dashes people type between digit groups.
    return (
        f'<form method="post" action="{escape(view.action)}">{hidden}'
        f'<label for="code">{escape(text.code_label())}</label>'
        f'<input id="code" name="code" type="text" inputmode="numeric" '
        f'pattern="[0-9 \\-]*" maxlength="{view.code_length + 6}" '
        f'autocomplete="one-time-code" autofocus required '
        f'aria-describedby="{described}">'
        f'<p class="muted" id="attempts">{escape(text.attempts_left(view.attempts_left))}</p>'
        f"{_trust_box(view)}"
        f'<button class="primary" type="submit">{escape(text.verify_button())}</button></form>'
    )


def _trust_box(view: ChallengeView) -> str:
    """Opt-in, unchecked: trusting a browser is the user's choice, made each time."""
    if view.trust_days <= 0:
        return ""
    return (
        f'<label class="trust"><input type="checkbox" name="trust" value="1"> '
        f"{escape(text.trust_browser_label(view.trust_days))}</label>"
    )


def _recovery_form(view: ChallengeView, hidden: str) -> str:
    """ "Can't get a text?": a recovery code instead (no script: ``<details>`` opens it)."""
    if view.recovery_left <= 0:
        return ""
    return (
        f'<details class="recovery"><summary>{escape(text.recovery_summary())}</summary>'
        f'<form method="post" action="{escape(view.action)}">{hidden}'
        f'<label for="recovery_code">{escape(text.recovery_label())}</label>'
        f'<input id="recovery_code" name="recovery_code" type="text" autocomplete="off" '
        f'autocapitalize="none" spellcheck="false" maxlength="40" required>'
        f'<p class="muted" id="recovery-left">{escape(text.recovery_left(view.recovery_left))}'
        f'</p><button type="submit">{escape(text.recovery_button())}</button></form></details>'
    )


def _change_number(view: ChallengeView) -> str:
    """A way to another number (it is asked for after a fresh code on this one, or a
    recovery code); in ``$logout``, so a custom template shows it too."""
    if not view.change_number_url:
        return ""
    return (
        f'<p class="logout"><a href="{escape(view.change_number_url)}">'
        f"{escape(text.phone_title())}</a></p>"
    )


def _logout(view: ChallengeView) -> str:
    """A way out for someone who is not the account's owner, or has no phone at hand."""
    if not view.logout_url:
        return ""
    return f'<p class="logout"><a href="{escape(view.logout_url)}">{escape(text.log_out())}</a></p>'


def _resend_form(view: ChallengeView, hidden: str) -> str:
    wait = view.resend_in
    disabled = " disabled" if wait > 0 else ""
    template = text.resend_wait()
    cooldown = (
        f'<span class="muted" id="cooldown" data-seconds="{wait}" '
        f'data-template="{escape(template)}">{escape(template.format(time=clock(wait)))}</span>'
        if wait > 0
        else ""
    )
    return (
        f'<form class="resend" method="post" action="{escape(view.resend_action)}">'
        f'{hidden}<button type="submit" id="resend"{disabled}>'
        f"{escape(text.resend_button())}</button> {cooldown}</form>"
    )


#: Counts the resend cooldown down and enables the button when it ends.
_COOLDOWN_JS = (
    "(function(){var c=document.getElementById('cooldown');if(!c)return;"
    "var s=+c.dataset.seconds,b=document.getElementById('resend');"
    "var f=function(s){return s<60?s+' s':Math.floor(s/60)+':'+('0'+s%60).slice(-2);};"
    "var t=setInterval(function(){s--;if(s<=0){clearInterval(t);b.disabled=false;"
    "c.textContent='';}else{c.textContent=c.dataset.template.replace('{time}',f(s));}"
    "},1000);})();"
)
#: WebOTP: where the browser can read the SMS (its last line binds the code to this site),
#: it fills the field and submits the form; elsewhere nothing happens. ``data-webotp`` says
#: what it did ("unsupported", "waiting", "filled", "stopped"). Typing the code and
#: submitting stops the wait.
_WEBOTP_JS = (
    "(function(){var i=document.getElementById('code');if(!i||!i.form)return;"
    "if(!('OTPCredential' in window)||!navigator.credentials){"
    "i.dataset.webotp='unsupported';return;}"
    "var a=new AbortController();i.form.addEventListener('submit',function(){a.abort();});"
    "i.dataset.webotp='waiting';"
    "navigator.credentials.get({otp:{transport:['sms']},signal:a.signal})"
    ".then(function(o){if(o&&o.code){i.value=o.code;i.dataset.webotp='filled';"
    "i.form.submit();}}).catch(function(){i.dataset.webotp='stopped';});})();"
)


def clock(seconds: int) -> str:
    """The time left as the timer shows it: "25 s" under a minute, else "m:ss" ("14:05",
    "60:00"); the page's script writes it the same way."""
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60}:{seconds % 60:02d}"


def _script(view: ChallengeView) -> str:
    """Progressive enhancement only: without JavaScript the button is enabled on reload,
    and the code is typed (or filled by the keyboard's one-time-code suggestion)."""
    parts = []
    if view.resend_in > 0:
        parts.append(_COOLDOWN_JS)
    if view.attempts_left:  # a code form to fill
        parts.append(_WEBOTP_JS)
    if not parts:
        return ""
    return f'<script nonce="{escape(view.script_nonce)}">{"".join(parts)}</script>'
