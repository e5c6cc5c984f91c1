"""The respondent's web form: `create_collect_app(...)` serves the instrument anonymously.

One link per site and wave (``/s/A/2026``), optionally with a single-use invitation
token (``/s/A/2026?t=...``). The page is plain HTML that works without JavaScript
(every section on one page); with JavaScript it shows one section at a time with
progress. Each question is a fieldset whose legend is the statement, with a labelled
radio button per answer, "Don't know / prefer not to say" always offered, nothing
required; the attributes are marked optional. Keyboard and screen-reader friendly
(WCAG 2.1 AA: labels, focus outline, 4.5:1 contrast, 44 px targets).

Every post is checked before anything is stored, and refused with a clear 4xx when:
the body is too large (413), the form token is missing or forged (403: cross-site
request forgery protection, since a token is signed for this site and wave), the
Origin is another site (403), a field is unknown or a code out of range (400), an
invitation token is unknown or used (403 / 409), or the body is not an HTML form post
(415). Accepted answers go to the durable inbox (`collect.inbox`), and only then is the
respondent thanked.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import re
import secrets
from html import escape
from http import HTTPStatus
from urllib.parse import parse_qs, unquote_to_bytes, urlparse

from collect.inbox import Inbox, TokenRefused
from survey.instrument import Instrument

_FORM_SLOT, _INVITATION_SLOT = "@@form-token@@", "@@invitation@@"
#: Largest accepted post: a full answer set is about 2 KB.
MAX_POST_BYTES = 32 * 1024


def sign(secret: bytes, nonce: str, site: str, wave: int) -> str:
    return hmac.new(secret, f"{nonce}|{site}|{wave}".encode(), hashlib.sha256).hexdigest()[:32]


def new_form_token(secret: bytes, site: str, wave: int) -> str:
    nonce = secrets.token_urlsafe(16)
    return f"{nonce}.{sign(secret, nonce, site, wave)}"


def check_form_token(secret: bytes, token: str, site: str, wave: int) -> str | None:
    """The submission id carried by a valid token, else None."""
    nonce, _, signature = (token or "").partition(".")
    if not nonce or not hmac.compare_digest(signature, sign(secret, nonce, site, wave)):
        return None
    return nonce


class SubmissionError(Exception):
    """A post that cannot be stored; status is the HTTP code, problems the reasons."""

    def __init__(self, status: int, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.status, self.problems = status, problems


#: Per instrument (by identity): each field's accepted values, worked out once rather
#: than for every field of every post (the server's busiest path).
_RULES: dict[int, tuple[Instrument, dict[str, tuple[bool, frozenset, str]]]] = {}


def _answer_rules(instrument: Instrument) -> dict[str, tuple[bool, frozenset, str]]:
    """{field: (is an item, accepted values, the accepted values as a message lists them)}."""
    cached = _RULES.get(id(instrument))
    if cached is not None and cached[0] is instrument:
        return cached[1]
    rules = {}
    for item in instrument.items:
        scale = instrument.response_scale(item.response_scale)
        allowed = list(scale.codes) + list(scale.missing_codes)
        rules[item.id] = (True, frozenset(allowed), ", ".join(map(str, allowed)))
    for attribute in instrument.attributes:
        codes = [o.code for o in attribute.options]
        rules[attribute.id] = (False, frozenset(codes), ", ".join(codes))
    _RULES[id(instrument)] = (instrument, rules)
    return rules


#: ASCII digits only, and few: str.isdigit() also accepts "²" (which int() refuses) and
#: int() refuses more than 4,300 digits; both are bad input, not server errors.
_WHOLE_NUMBER = re.compile(r"[0-9]{1,6}")


def validate_answers(instrument: Instrument, form: dict[str, str]) -> dict:
    """Answers of a post as {field: code or option}; SubmissionError listing every problem."""
    problems, answers = [], {}
    rules = _answer_rules(instrument)
    for name, value in form.items():
        if name in ("form_token", "t"):
            continue
        value = value.strip()
        if name == "duration_seconds":
            if value:
                if not _WHOLE_NUMBER.fullmatch(value) or int(value) > 86_400:
                    problems.append(f"duration_seconds {value[:20]!r} is not a whole number "
                                    "of seconds up to 86400")
                else:
                    answers[name] = int(value)
            continue
        if name not in rules:
            problems.append(f"unknown field {name[:40]!r}")
            continue
        if not value:
            continue
        is_item, allowed, listed = rules[name]
        if is_item:
            if not _WHOLE_NUMBER.fullmatch(value) or int(value) not in allowed:
                problems.append(f"{name}: {value[:20]!r} is not one of {listed}")
            else:
                answers[name] = int(value)
        elif value not in allowed:
            problems.append(f"{name}: {value[:30]!r} is not one of {listed}")
        else:
            answers[name] = value
    if problems:
        raise SubmissionError(400, problems)
    return answers


class CollectApp:
    """The survey server as a plain WSGI application (two routes, no framework).

    It is the busiest code of the product: each respondent fetches the page and posts
    once, and a trust's survey can bring hundreds a second. A web framework's request
    and response objects cost more per request than the work itself, so requests are
    handled straight from the WSGI environ.
    """

    def __init__(self, instrument: Instrument, inbox: Inbox, surveys: set[tuple[str, int]],
                 require_tokens: bool = False, secret: bytes | None = None) -> None:
        self.instrument, self.inbox, self.surveys = instrument, inbox, surveys
        self.require_tokens = require_tokens
        self.secret = secret or inbox.form_secret()
        self._rendered: dict[tuple[str, int], str] = {}

    def test_client(self):
        """A werkzeug test client for this app (tests only)."""
        from werkzeug.test import Client
        from werkzeug.wrappers import Response

        return Client(self, Response)

    def __call__(self, environ: dict, start_response) -> list[bytes]:
        status, headers, body = self.handle(environ)
        start_response(_STATUS[status], [("Content-Length", str(len(body))), *headers])
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else body]

    def handle(self, environ: dict) -> tuple[int, list[tuple[str, str]], bytes]:
        match = _SURVEY_PATH.fullmatch(environ.get("PATH_INFO", ""))
        survey = match and (match[1], int(match[2]))
        if survey not in self.surveys:
            return _message("There is no survey at this address; please check your link.", 404)
        method = environ["REQUEST_METHOD"]
        if method in ("GET", "HEAD"):
            return self.form(environ, *survey)
        if method == "POST":
            return self.submit(environ, *survey)
        status, headers, body = _message("This address only accepts the survey form.", 405)
        return status, [*headers, ("Allow", "GET, HEAD, POST")], body

    def form(self, environ: dict, site: str, wave: int):
        token = parse_qs(environ.get("QUERY_STRING", "")).get("t", [""])[0]
        if self.require_tokens and not token:
            return _message("Please use the personal link from your invitation.", 403)
        # The page is the same for everyone but its two tokens: render it once.
        if (site, wave) not in self._rendered:
            self._rendered[(site, wave)] = render_form(self.instrument, site, wave,
                                                       _FORM_SLOT, _INVITATION_SLOT)
        page = self._rendered[(site, wave)].replace(
            _FORM_SLOT, new_form_token(self.secret, site, wave))
        page = page.replace(_INVITATION_SLOT, escape(token, quote=True)).encode()
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Vary", "Accept-Encoding"),
                   ("Cache-Control", "no-store"),
                   # same-origin: the invitation token in the URL never leaks to another
                   # site, and the browser still sends our own Origin with the post
                   # (no-referrer would send "null")
                   ("Referrer-Policy", "same-origin")]
        # The whole survey is one page (~46 KB, ~6 KB compressed): for a respondent on a
        # phone's data connection it is worth compressing when the browser accepts it.
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            page = gzip.compress(page, compresslevel=6)
            headers.append(("Content-Encoding", "gzip"))
        return 200, headers, page

    def submit(self, environ: dict, site: str, wave: int):
        origin = environ.get("HTTP_ORIGIN")
        if origin and urlparse(origin).netloc != environ.get("HTTP_HOST"):
            return _message("This form can only be sent from its own page.", 403)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0:   # read(-1) would read to the end of the stream
            return _message("The form sent was not understood.", 400)
        if length > MAX_POST_BYTES:
            return _message("The form sent was too large.", 413)
        media_type = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        if media_type != "application/x-www-form-urlencoded":
            return _message("The form sent was not understood (expected an HTML form post).",
                            415)
        try:
            pairs = parse_form(environ["wsgi.input"].read(length))
        except ValueError:
            return _message("The form sent was not understood.", 400)
        form = dict(pairs)
        if len(pairs) != len(form):
            return _message("A question was answered twice in one post.", 400)
        submission_id = check_form_token(self.secret, form.get("form_token", ""), site, wave)
        if submission_id is None:
            return _message("This form has expired or did not come from this site; please "
                            "reload the survey page.", 403)
        token = form.get("t") or None
        if self.require_tokens and not token:
            return _message("Please use the personal link from your invitation.", 403)
        try:
            answers = validate_answers(self.instrument, form)
            outcome = self.inbox.submit(submission_id, site, wave, answers, token)
        except SubmissionError as error:
            return _message("Some answers could not be accepted: "
                            + "; ".join(error.problems), error.status)
        except TokenRefused as error:
            return _message(str(error).capitalize() + ".", 409 if token else 403)
        return _message("Thank you. Your answers have been saved anonymously."
                        + (" (They had already been received.)" if outcome == "duplicate"
                           else ""), 200, title="Thank you")


def create_collect_app(instrument: Instrument, inbox: Inbox, surveys: set[tuple[str, int]],
                       require_tokens: bool = False, secret: bytes | None = None) -> CollectApp:
    """The survey server for `surveys` (site, wave) pairs, storing into `inbox`."""
    return CollectApp(instrument, inbox, surveys, require_tokens, secret)


_SURVEY_PATH = re.compile(r"/s/([^/]+)/([0-9]{1,6})")
_STATUS = {code: f"{code} {HTTPStatus(code).phrase}"
           for code in (200, 400, 403, 404, 405, 409, 413, 415)}


def _field(raw: bytes) -> str:
    """One name or value of a urlencoded body; ValueError when it is not UTF-8."""
    if b"%" in raw or b"+" in raw:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    return raw.decode("utf-8")


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs of an application/x-www-form-urlencoded body, in order.

    The same result as urllib's parse_qsl(keep_blank_values=True) for what browsers
    send, at a fraction of its cost (most fields need no unescaping); raises ValueError
    for text that is not UTF-8.
    """
    pairs = []
    for part in body.split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            pairs.append((_field(name), _field(value)))
    return pairs


def _message(text: str, status: int, title: str = "Survey"):
    body = (f"<main class='box'><h1>{escape(title)}</h1>"
            f"<p role='{'status' if status < 400 else 'alert'}'>{escape(text)}</p></main>")
    return status, [("Content-Type", "text/html; charset=utf-8")], _wrap(title, body).encode()


def _wrap(title: str, body: str, script: str = "") -> str:
    return (f"<!DOCTYPE html><html lang='en-GB'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
            f"<body>{body}{script}</body></html>")


def render_form(instrument: Instrument, site: str, wave: int, form_token: str,
                invitation: str = "") -> str:
    """The whole survey as one accessible HTML page (sections shown one at a time by JS)."""
    sections = [("About this survey",
                 f"<p>{escape(instrument.introduction)}</p>")]
    # Neutral headings ("Questions, part 2"): a scale's name ("Help-seeking stigma")
    # would tell respondents what is being measured and colour their answers.
    groups = [instrument.items_of(scale.id) for scale in instrument.scales]
    groups += [tuple(item for item in instrument.items if item.scale is None)]
    groups = [g for g in groups if g]
    for number, items in enumerate(groups, start=1):
        sections.append((f"Questions, part {number} of {len(groups)}",
                         "".join(_question(instrument, item) for item in items)))
    sections.append(("About you (optional)",
                     "<p>These questions are optional. They are used only to compare groups "
                     "of ten or more people.</p>"
                     + "".join(_attribute(a) for a in instrument.attributes)))
    total = len(sections)
    parts = []
    for number, (heading, content) in enumerate(sections, start=1):
        parts.append(f"<section class='step' id='step-{number}' aria-labelledby='h-{number}'>"
                     f"<p class='progress'>Section {number} of {total}</p>"
                     f"<h2 id='h-{number}' tabindex='-1'>{escape(heading)}</h2>{content}"
                     f"<div class='nav'>"
                     + (f"<button type='button' class='back'>Back</button>" if number > 1 else "")
                     + (f"<button type='button' class='next'>Next</button>" if number < total
                        else "<button type='submit' id='submit'>Send my answers</button>")
                     + "</div></section>")
    body = (f"<main><h1>{escape(instrument.title)}</h1>"
            f"<form method='post' action='/s/{escape(site)}/{wave}' id='survey'>"
            f"<input type='hidden' name='form_token' value='{escape(form_token)}'>"
            + f"<input type='hidden' name='t' value='{escape(invitation)}'>"
            + "<input type='hidden' name='duration_seconds' id='duration' value=''>"
            + "".join(parts) + "</form></main>")
    return _wrap(instrument.title, body, _SCRIPT)


def _question(instrument: Instrument, item) -> str:
    scale = instrument.response_scale(item.response_scale)
    options = [(o.code, o.label) for o in scale.options] + [(o.code, o.label)
                                                             for o in scale.missing]
    radios = "".join(
        f"<label class='option'><input type='radio' name='{item.id}' value='{code}'>"
        f"<span>{escape(label)}</span></label>" for code, label in options)
    return (f"<fieldset class='question'><legend>{escape(item.text)}</legend>"
            f"<div class='options'>{radios}</div></fieldset>")


def _attribute(attribute) -> str:
    radios = "".join(
        f"<label class='option'><input type='radio' name='{attribute.id}' value='{o.code}'>"
        f"<span>{escape(o.label)}</span></label>" for o in attribute.options)
    return (f"<fieldset class='question'><legend>{escape(attribute.question)} "
            f"<span class='optional'>(optional)</span></legend>"
            f"<div class='options'>{radios}</div></fieldset>")


_CSS = """
body{margin:0;font:18px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1b1b1b;
background:#f7f7f7}
main{max-width:720px;margin:0 auto;padding:12px 16px 40px}
h1{font-size:1.5rem}h2{font-size:1.25rem}
.question{border:1px solid #c8c8c8;border-radius:8px;background:#fff;margin:0 0 14px;
padding:10px 12px}
legend{font-weight:600;padding:0 4px}
.options{display:flex;flex-wrap:wrap;gap:6px;margin-top:6px}
.option{display:flex;align-items:center;gap:8px;min-height:44px;padding:4px 10px;
border:1px solid #767676;border-radius:6px;cursor:pointer;flex:1 1 180px}
.option input{width:22px;height:22px;margin:0;flex:none}
.option:focus-within{outline:3px solid #b35806;outline-offset:2px}
.optional{font-weight:400;color:#4a4a4a}
.progress{color:#4a4a4a;margin:16px 0 0}
.nav{display:flex;gap:10px;justify-content:space-between;margin:8px 0 24px}
button{font-size:1rem;min-height:44px;padding:8px 20px;border-radius:6px;border:2px solid
#005a8c;background:#005a8c;color:#fff;cursor:pointer}
button.back{background:#fff;color:#005a8c}
button:focus-visible{outline:3px solid #b35806;outline-offset:2px}
.box{background:#fff;border-radius:8px;margin-top:8vh;padding:16px 22px}
.js .step{display:none}.js .step.current{display:block}
"""

# Progressive enhancement: one section at a time, focus moved to each new heading so
# a screen reader announces it; the time taken is sent (seconds only) for the
# speeding check, never a time of day.
_SCRIPT = """<script>
(function(){
  var started = Date.now();
  document.documentElement.className = 'js';
  var steps = Array.prototype.slice.call(document.querySelectorAll('.step'));
  var current = 0;
  function show(i){
    steps[current].classList.remove('current');
    current = i; steps[i].classList.add('current');
    var h = steps[i].querySelector('h2'); if (h) { h.focus(); }
    window.scrollTo(0, 0);
  }
  steps[0].classList.add('current');
  steps.forEach(function(step, i){
    var next = step.querySelector('.next'), back = step.querySelector('.back');
    if (next) next.addEventListener('click', function(){ show(i + 1); });
    if (back) back.addEventListener('click', function(){ show(i - 1); });
  });
  document.getElementById('survey').addEventListener('submit', function(){
    document.getElementById('duration').value = Math.round((Date.now() - started) / 1000);
  });
})();
</script>"""
