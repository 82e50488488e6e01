"""The built-in pages, each made from its page's context (:mod:`sms2fa_middleware.pages`): the
same context an app's ``render`` hook gets, so what the built-in page shows the app's page
can show too.

The challenge page is a ``string.Template`` file an app can override with ``template_dir=``:
a ``challenge.html`` there replaces ours. Placeholders: ``$masked_recipient`` (text), and the
ready-made HTML fragments ``$lead``, ``$messages``, ``$code_form``, ``$resend_form``,
``$recovery_form`` (empty unless the user has recovery codes), ``$logout`` (the "Change your
phone number" link with ``on_enroll``, and the "Log out" link with ``logout_url``; else
empty) and ``$script``, the texts ``$title`` and ``$heading``, and
``$lang`` and ``$dir`` for ``<html>`` (the request's language: ``pt-BR``; ``rtl`` for
Arabic). The other pages are made here, in the plain pages' look (:func:`html_start`).
Every sentence comes from :mod:`sms2fa_middleware.text`, in the request's language.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, cast

from ... import languages, text
from ...pages import (
    BrowsersContext,
    ChallengeContext,
    EnrollContext,
    MessageContext,
    PhoneContext,
    RecoveryContext,
)

#: The name of the CSRF field in every form the middleware serves.
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class ChallengeView:
    """Everything the challenge page shows that is not the same on every page; nothing
    secret."""

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


def common(
    page: str,
    status: int,
    title: str,
    nonce: str = "",
    logout_url: str | None = None,
    request: Any = None,
) -> dict[str, Any]:
    """The keys every page's context has (:class:`~sms2fa_middleware.pages.PageContext`), in
    the language spoken now."""
    spoken = text.language()
    return {
        "page": page,
        "status": status,
        "title": title,
        "lang": languages.html_tag(spoken),
        "dir": languages.direction(spoken),
        "csp_nonce": nonce,
        "logout_url": logout_url,
        "logout_text": text.log_out(),
        "request": request,
    }


def challenge_context(
    view: ChallengeView, status: int = 200, request: Any = None
) -> ChallengeContext:
    """The challenge page's context from what the flow worked out."""
    wait = view.resend_in
    masked = view.masked_recipient
    lead = text.lead_sent(masked) if view.attempts_left else text.lead_to_send(masked)
    base = common(
        "challenge", status, text.page_title(), view.script_nonce, view.logout_url, request
    )
    specific = dict(
        heading=text.heading(),
        lead=lead,
        masked_number=masked,
        action=view.action,
        resend_action=view.resend_action,
        csrf_name=CSRF_FIELD,
        csrf_value=view.csrf_token,
        next_url=view.next_url,
        code_length=view.code_length,
        attempts_left=view.attempts_left,
        attempts_text=text.attempts_left(view.attempts_left) if view.attempts_left else None,
        error=view.error,
        notice=view.notice,
        held=view.held,
        retry_after=wait,
        retry_after_text=text.resend_wait().format(time=text.duration(wait)) if wait > 0 else None,
        retry_after_template=text.resend_wait(),
        retry_after_join=text.duration_join(),
        recovery_left=view.recovery_left,
        recovery_left_text=text.recovery_left(view.recovery_left),
        trust_days=view.trust_days,
        trust_text=text.trust_browser_label(view.trust_days) if view.trust_days > 0 else None,
        code_label=text.code_label(),
        verify_label=text.verify_button(),
        resend_label=text.resend_button(),
        new_code_text=text.ask_for_new_code(),
        recovery_summary=text.recovery_summary(),
        recovery_label=text.recovery_label(),
        recovery_button=text.recovery_button(),
        change_number_url=view.change_number_url,
        change_number_text=text.phone_title(),
    )
    return cast(ChallengeContext, {**base, **specific})


class Pages:
    """Loads the challenge template once and renders the built-in pages."""

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
        """The built-in challenge page for ``view``, in the language spoken now."""
        return self.render("challenge", challenge_context(view)).encode("utf-8")

    def render(self, page: str, context: Mapping[str, Any]) -> str:
        """The built-in page ``page`` for its context."""
        if page == "challenge":
            return self._challenge(context)  # type: ignore[arg-type]
        if page == "enroll":
            return enroll(context)  # type: ignore[arg-type]
        if page == "phone":
            return phone(context)  # type: ignore[arg-type]
        if page == "recovery":
            return recovery(context)  # type: ignore[arg-type]
        if page == "browsers":
            return browsers(context)  # type: ignore[arg-type]
        return message(context)  # type: ignore[arg-type]

    def _challenge(self, c: ChallengeContext) -> str:
        hidden = _hidden(c["csrf_value"], c["next_url"])
        # dir="ltr" isolates the number: on a right-to-left page "+1••••23" stays as it is.
        number = f'<strong dir="ltr">{escape(c["masked_number"])}</strong>'
        lead = text.lead_sent(number) if c["attempts_left"] else text.lead_to_send(number)
        return self.challenge.safe_substitute(
            lang=c["lang"],
            dir=c["dir"],
            title=escape(c["title"]),
            heading=escape(c["heading"]),
            lead=f"<p>{lead}</p>",
            masked_recipient=escape(c["masked_number"]),
            messages=_messages(c),
            code_form=_code_form(c, hidden),
            resend_form=_resend_form(c, hidden),
            recovery_form=_recovery_form(c, hidden),
            logout=_change_number(c) + _logout(c["logout_url"], c["logout_text"]),
            script=script(c),
        )


def _hidden(csrf_value: str, next_url: str | None = None) -> str:
    fields = f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf_value)}">'
    if next_url is not None:
        fields += f'<input type="hidden" name="next" value="{escape(next_url)}">'
    return fields


def _messages(c: ChallengeContext) -> str:
    messages = ""
    if c["error"]:
        messages += f'<p class="error" role="alert" id="error">{escape(c["error"])}</p>'
    if c["notice"]:
        messages += f'<p class="notice" role="status">{escape(c["notice"])}</p>'
    if c["held"] and not c["error"]:
        messages += f'<p class="notice" role="status" id="held">{escape(c["held"])}</p>'
    return messages


def _code_form(c: ChallengeContext, hidden: str) -> str:
    if not c["attempts_left"]:
        return f'<p class="notice" role="status">{escape(c["new_code_text"])}</p>'
    # The field has the focus on load, so a screen reader reads it first: its description
    # (the error, if any, then the attempts left) is read with it.
    described = "error attempts" if c["error"] else "attempts"
    return (
        f'<form method="post" action="{escape(c["action"])}">{hidden}'
        f'<label for="code">{escape(c["code_label"])}</label>'
        f'<input id="code" name="code" type="text" inputmode="numeric" '
        f"{_code_size(c['code_length'])} "
        f'autocomplete="one-time-code" autofocus required '
        f'aria-describedby="{described}">'
        f'<p class="muted" id="attempts">{escape(c["attempts_text"] or "")}</p>'
        f"{_trust_box(c)}"
        f'<button class="primary" type="submit">{escape(c["verify_label"])}</button></form>'
    )


def _trust_box(c: ChallengeContext) -> str:
    """Opt-in, unchecked: trusting a browser is the user's choice, made each time."""
    if not c["trust_text"]:
        return ""
    return (
        f'<label class="trust"><input type="checkbox" name="trust" value="1"> '
        f"{escape(c['trust_text'])}</label>"
    )


def _recovery_form(c: ChallengeContext, hidden: str) -> str:
    """ "Can't get a text?": a recovery code instead (no script: ``<details>`` opens it)."""
    if c["recovery_left"] <= 0:
        return ""
    return (
        f'<details class="recovery"><summary>{escape(c["recovery_summary"])}</summary>'
        f'<form method="post" action="{escape(c["action"])}">{hidden}'
        f'<label for="recovery_code">{escape(c["recovery_label"])}</label>'
        f'<input id="recovery_code" name="recovery_code" type="text" autocomplete="off" '
        f'autocapitalize="none" spellcheck="false" maxlength="40" required>'
        f'<p class="muted" id="recovery-left">{escape(c["recovery_left_text"])}'
        f'</p><button type="submit">{escape(c["recovery_button"])}</button></form></details>'
    )


def _change_number(c: ChallengeContext) -> str:
    """A way to another number (it is asked for after a fresh code on this one, or a
    recovery code); in ``$logout``, so a custom template shows it too."""
    url = c["change_number_url"]
    if not url:
        return ""
    return f'<p class="logout"><a href="{escape(url)}">{escape(c["change_number_text"])}</a></p>'


def _logout(url: str | None, label: str) -> str:
    """A way out for someone who is not the account's owner, or has no phone at hand."""
    if not url:
        return ""
    return f'<p class="logout"><a href="{escape(url)}">{escape(label)}</a></p>'


def _resend_form(c: ChallengeContext, hidden: str) -> str:
    wait = c["retry_after"]
    disabled = " disabled" if wait > 0 else ""
    cooldown = (
        f'<span class="muted" id="cooldown" data-seconds="{wait}" '
        f'data-template="{escape(c["retry_after_template"])}" '
        f'data-join="{escape(c["retry_after_join"])}">{escape(c["retry_after_text"] or "")}</span>'
        if wait > 0
        else ""
    )
    return (
        f'<form class="resend" method="post" action="{escape(c["resend_action"])}">'
        f'{hidden}<button type="submit" id="resend"{disabled}>'
        f"{escape(c['resend_label'])}</button> {cooldown}</form>"
    )


#: Counts the resend cooldown down and enables the button when it ends. The time left is
#: worded by the browser's ``Intl`` in the page's language ("14 minutes and 5 seconds", with
#: that language's plurals; the page's own joining words from ``data-join``); a browser
#: without it shows "25 s" and "14:05". The first text is the server's, already translated.
_COOLDOWN_JS = (
    "(function(){var c=document.getElementById('cooldown');if(!c)return;"
    "var s=+c.dataset.seconds,b=document.getElementById('resend'),"
    "l=document.documentElement.lang||'en';"
    "var u=function(n,w){return new Intl.NumberFormat(l,{style:'unit',unit:w,"
    "unitDisplay:'long',numberingSystem:'latn'}).format(n);};"
    "var f=function(s){var m=Math.floor(s/60),r=s%60;try{if(m&&r){return(c.dataset.join||"
    "'{minutes} {seconds}').replace('{minutes}',u(m,'minute')).replace('{seconds}',"
    "u(r,'second'));}return m?u(m,'minute'):u(r,'second');}catch(e){"
    "return s<60?s+' s':m+':'+('0'+r).slice(-2);}};"
    "var t=setInterval(function(){s--;if(s<=0){clearInterval(t);if(b)b.disabled=false;"
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


def script(c: Mapping[str, Any]) -> str:
    """The middleware's own script for a page (the challenge's countdown and WebOTP), or "".
    Progressive enhancement only: without JavaScript the button is enabled on reload, and
    the code is typed (or filled by the keyboard's one-time-code suggestion)."""
    if c.get("page") != "challenge":
        return ""
    parts = []
    if c["retry_after"] > 0:
        parts.append(_COOLDOWN_JS)
    if c["attempts_left"]:  # a code form to fill
        parts.append(_WEBOTP_JS)
    if not parts:
        return ""
    return f'<script nonce="{escape(c["csp_nonce"])}">{"".join(parts)}</script>'


#: The plain pages' look: readable on a 320 px phone (long words such as a user agent wrap
#: rather than scroll sideways) and in the reader's colour scheme (the browser's own light or
#: dark colours, so the contrast is the browser's, not ours to get wrong).
_PLAIN_STYLE = (
    "<style>:root{color-scheme:light dark}body{font:16px/1.5 system-ui,sans-serif;"
    "max-width:40rem;margin:0 auto;padding:1rem;overflow-wrap:anywhere}</style>"
)


def html_start(title: str) -> str:
    """The start of a plain page up to ``<body>``: the request's language and direction, a
    phone-width viewport, the light/dark colour scheme, and ``title`` (text)."""
    return (
        f'<!doctype html><html {text.html_attributes()}><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{escape(title)}</title>{_PLAIN_STYLE}'
        f"</head><body>"
    )


def plain(title: str, body_html: str) -> str:
    """A plain page: ``title`` is text, ``body_html`` ready-made HTML (in its ``<main>``)."""
    return f"{html_start(title)}<main>{body_html}</main></body></html>"


def titled(title: str, sentence: str) -> str:
    """A plain page's body: its title as the heading (what a screen reader jumps to) and
    one sentence."""
    return f"<h1>{escape(title)}</h1><p>{escape(sentence)}</p>"


def message(c: MessageContext) -> str:
    link = ""
    if c["link_url"]:
        link = f'<p><a href="{escape(c["link_url"])}">{escape(c["link_text"] or "")}</a></p>'
    return plain(c["title"], titled(c["title"], c["sentence"]) + link)


def enroll(c: EnrollContext) -> str:
    action = escape(c["action"])
    hidden = _hidden(c["csrf_value"], c["next_url"])
    said = f'<p class="error" role="alert">{escape(c["error"])}</p>' if c["error"] else ""
    code_form = ""
    if c["sent_text"] is not None:
        code_form = (
            f'<p id="enroll-sent" role="status">{escape(c["sent_text"])}</p>'
            f'<form method="post" action="{action}">{hidden}'
            f'<input name="code" inputmode="numeric" autocomplete="one-time-code" '
            f"{_code_size(c['code_length'])} required autofocus "
            f'aria-label="{escape(c["code_label"])}">'
            f'<button type="submit">{escape(c["confirm_label"])}</button></form>'
        )
    title = escape(c["title"])
    return (
        f'<!doctype html><html {text.html_attributes()}><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{title}</title>'
        f"<main><h1>{title}</h1><p>{escape(c['intro'])}</p>{said}{code_form}"
        f'<form method="post" action="{action}">{hidden}'
        f"<label>{escape(c['phone_label'])} "
        f'<input name="phone" type="tel" autocomplete="tel" required></label>'
        f'<button type="submit">{escape(c["send_label"])}</button></form>'
        f"</main></html>"
    )


def _code_size(length: int) -> str:
    """A code field's ``pattern`` and ``maxlength``, as the challenge's: the server drops the
    spaces and dashes people type between digit groups ("123 456"), so the field lets them."""
    return f'pattern="[0-9 \\-]*" maxlength="{length + 6}"'


def phone(c: PhoneContext) -> str:
    action = escape(c["action"])
    hidden = _hidden(c["csrf_value"], c["next_url"])
    said = f'<p class="error" role="alert">{escape(c["error"])}</p>' if c["error"] else ""
    changed = ""
    if c["changed_text"] is not None:
        changed = (
            f'<p class="notice" role="status" id="phone-changed">{escape(c["changed_text"])}</p>'
            f'<p><a href="{escape(c["recovery_url"])}">{escape(c["recovery_text"])}</a>'
            f' &middot; <a href="{escape(c["next_url"])}">{escape(c["continue_text"])}</a></p>'
        )
    code_form = ""
    if c["sent_text"] is not None:
        code_form = (
            f'<p id="phone-sent" role="status">{escape(c["sent_text"])}</p>'
            f'<form method="post" action="{action}">{hidden}'
            f"<label>{escape(c['code_label'])} "
            f'<input name="code" inputmode="numeric" autocomplete="one-time-code" '
            f"{_code_size(c['code_length'])} required autofocus></label>"
            f'<button type="submit">{escape(c["confirm_label"])}</button></form>'
        )
    return plain(
        c["title"],
        f"<h1>{escape(c['title'])}</h1>{changed}<p>{escape(c['intro'])}</p>{said}{code_form}"
        f'<form method="post" action="{action}">{hidden}'
        f"<label>{escape(c['phone_label'])} "
        f'<input name="phone" type="tel" autocomplete="tel" required></label>'
        f'<button type="submit">{escape(c["send_label"])}</button></form>',
    )


def recovery(c: RecoveryContext) -> str:
    shown = ""
    if c["codes"]:
        items = "".join(f"<li><code>{escape(code)}</code></li>" for code in c["codes"])
        shown = (
            f'<p class="notice" role="status">{escape(c["shown_once_text"] or "")}</p>'
            f'<ol id="recovery-codes">{items}</ol>'
        )
    return plain(
        c["title"],
        f"<h1>{escape(c['title'])}</h1><p>{escape(c['intro'])}</p>{shown}"
        f'<p id="recovery-left">{escape(c["left_text"])}</p>'
        f'<form method="post" action="{escape(c["action"])}">{_hidden(c["csrf_value"])}'
        f'<button type="submit">{escape(c["generate_label"])}</button></form>',
    )


def browsers(c: BrowsersContext) -> str:
    action = escape(c["action"])
    hidden = _hidden(c["csrf_value"])

    def button(value: str, label: str) -> str:
        return (
            f'<form method="post" action="{action}">{hidden}'
            f'<input type="hidden" name="revoke" value="{escape(value)}">'
            f'<button type="submit">{escape(label)}</button></form>'
        )

    def when(iso: str, words: str) -> str:
        return f'<time datetime="{escape(iso)}">{escape(words)}</time>'

    rows = "".join(
        f'<li class="browser" data-id="{escape(b["id"])}">'
        f"<strong>{escape(b['user_agent'] or '?')}</strong>"
        + (f" <em>({escape(c['this_browser_text'])})</em>" if b["this_browser"] else "")
        + f"<br><small>{escape(b['network'])} &middot; "
        f"{when(b['created_at'], b['created_text'])} &middot; "
        f"{when(b['expires_at'], b['expires_text'])} &middot; "
        f"{when(b['last_used'], b['last_used_text'])}</small>"
        f"{button(b['id'], c['revoke_label'])}</li>"
        for b in c["browsers"]
    )
    listing = (
        f'<ul id="trusted-browsers">{rows}</ul>{button("all", c["revoke_all_label"])}'
        if c["browsers"]
        else f'<p id="no-browsers">{escape(c["none_text"])}</p>'
    )
    return plain(c["title"], f"<h1>{escape(c['title'])}</h1><p>{escape(c['intro'])}</p>{listing}")


__all__ = [
    "CSRF_FIELD",
    "ChallengeView",
    "Pages",
    "challenge_context",
    "common",
    "html_start",
    "message",
    "phone",
    "plain",
    "script",
    "titled",
]
