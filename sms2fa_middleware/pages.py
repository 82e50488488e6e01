"""The challenge page: ``string.Template`` files that an app can override, filled with escaped text.

An app re-skins the page by passing ``template_dir=``: a ``challenge.html`` there replaces
ours. Placeholders: ``$masked_recipient`` (text), and the ready-made HTML fragments ``$lead``,
``$messages``, ``$code_form``, ``$resend_form`` and ``$script``.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from importlib import resources
from pathlib import Path
from string import Template


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
        return (resources.files(__package__) / "templates" / name).read_text("utf-8")

    def render_challenge(self, view: ChallengeView) -> bytes:
        messages = ""
        if view.error:
            messages += f'<p class="error" role="alert">{escape(view.error)}</p>'
        if view.notice:
            messages += f'<p class="notice" role="status">{escape(view.notice)}</p>'
        hidden = (
            f'<input type="hidden" name="csrf_token" value="{escape(view.csrf_token)}">'
            f'<input type="hidden" name="next" value="{escape(view.next_url)}">'
        )
        if view.attempts_left:
            plural = "s" if view.attempts_left != 1 else ""
            code_form = (
                f'<form method="post" action="{escape(view.action)}">{hidden}'
                f'<label for="code">Verification code</label>'
                f'<input id="code" name="code" type="text" inputmode="numeric" '
                f'pattern="[0-9 \\-]*" maxlength="{view.code_length + 6}" '
                f'autocomplete="one-time-code" autofocus required>'
                f'<p class="muted" id="attempts">{view.attempts_left} attempt{plural} left.</p>'
                f'<button class="primary" type="submit">Verify</button></form>'
            )
        else:
            code_form = '<p class="notice" role="status">Ask for a new code to continue.</p>'
        wait = view.resend_in
        disabled = " disabled" if wait > 0 else ""
        cooldown = (
            f'<span class="muted" id="cooldown" data-seconds="{wait}">'
            f"You can ask for a new code in {wait} s.</span>"
            if wait > 0 else ""
        )
        resend_form = (
            f'<form class="resend" method="post" action="{escape(view.resend_action)}">'
            f'{hidden}<button type="submit" id="resend"{disabled}>Send a new code</button> '
            f"{cooldown}</form>"
        )
        # Progressive enhancement only: without JavaScript the button is enabled on reload.
        script = (
            f'<script nonce="{escape(view.script_nonce)}">'
            "(function(){var c=document.getElementById('cooldown');if(!c)return;"
            "var s=+c.dataset.seconds,b=document.getElementById('resend');"
            "var t=setInterval(function(){s--;if(s<=0){clearInterval(t);b.disabled=false;"
            "c.textContent='';}else{c.textContent='You can ask for a new code in '+s+' s.';}"
            "},1000);})();</script>"
            if wait > 0 else ""
        )
        number = f"<strong>{escape(view.masked_recipient)}</strong>"
        lead = (f"<p>We sent a verification code by text message to {number}.</p>"
                if view.attempts_left else
                f"<p>We need to send a verification code by text message to {number}.</p>")
        return self.challenge.safe_substitute(
            lead=lead,
            masked_recipient=escape(view.masked_recipient),
            messages=messages,
            code_form=code_form,
            resend_form=resend_form,
            script=script,
        ).encode("utf-8")
