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
Origin is another site (403), a field is unknown or a code out of range (400), or an
invitation token is unknown or used (403 / 409). Accepted answers go to the durable
inbox (`survey.inbox`), and only then is the respondent thanked.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import secrets
from html import escape
from urllib.parse import urlparse

import flask

from survey.inbox import Inbox, TokenRefused
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
                if not value.isdigit() or int(value) > 86_400:
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
            if not value.isdigit() or int(value) not in allowed:
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


def create_collect_app(instrument: Instrument, inbox: Inbox, surveys: set[tuple[str, int]],
                       require_tokens: bool = False, secret: bytes | None = None) -> flask.Flask:
    """The survey server for `surveys` (site, wave) pairs, storing into `inbox`."""
    app = flask.Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=MAX_POST_BYTES)
    secret = secret or inbox.form_secret()

    def survey_or_404(site: str, wave: int) -> None:
        if (site, wave) not in surveys:
            flask.abort(404)

    rendered: dict[tuple[str, int], str] = {}

    @app.get("/s/<site>/<int:wave>")
    def form(site: str, wave: int):
        survey_or_404(site, wave)
        token = flask.request.args.get("t", "")
        if require_tokens and not token:
            return _message("Please use the personal link from your invitation.", 403)
        # The page is the same for everyone but its two tokens: render it once.
        if (site, wave) not in rendered:
            rendered[(site, wave)] = render_form(instrument, site, wave, _FORM_SLOT,
                                                 _INVITATION_SLOT)
        page = rendered[(site, wave)].replace(_FORM_SLOT, new_form_token(secret, site, wave))
        return _page(page.replace(_INVITATION_SLOT, escape(token, quote=True)))

    @app.post("/s/<site>/<int:wave>")
    def submit(site: str, wave: int):
        survey_or_404(site, wave)
        origin = flask.request.headers.get("Origin")
        if origin and urlparse(origin).netloc != flask.request.host:
            return _message("This form can only be sent from its own page.", 403)
        form = flask.request.form.to_dict(flat=True)
        if len(list(flask.request.form.items(multi=True))) != len(form):
            return _message("A question was answered twice in one post.", 400)
        submission_id = check_form_token(secret, form.get("form_token", ""), site, wave)
        if submission_id is None:
            return _message("This form has expired or did not come from this site; please "
                            "reload the survey page.", 403)
        token = form.get("t") or None
        if require_tokens and not token:
            return _message("Please use the personal link from your invitation.", 403)
        try:
            answers = validate_answers(instrument, form)
            outcome = inbox.submit(submission_id, site, wave, answers, token)
        except SubmissionError as error:
            return _message("Some answers could not be accepted: "
                            + "; ".join(error.problems), error.status)
        except TokenRefused as error:
            return _message(str(error).capitalize() + ".", 409 if token else 403)
        return _message("Thank you. Your answers have been saved anonymously."
                        + (" (They had already been received.)" if outcome == "duplicate"
                           else ""), 200, title="Thank you")

    @app.errorhandler(413)
    def too_large(_error):
        return _message("The form sent was too large.", 413)

    @app.errorhandler(404)
    def not_found(_error):
        return _message("There is no survey at this address; please check your link.", 404)

    @app.errorhandler(405)
    def not_allowed(_error):
        return _message("This address only accepts the survey form.", 405)

    return app


def _message(text: str, status: int, title: str = "Survey") -> flask.Response:
    body = (f"<main class='box'><h1>{escape(title)}</h1>"
            f"<p role='{'status' if status < 400 else 'alert'}'>{escape(text)}</p></main>")
    return flask.Response(_wrap(title, body), status=status, mimetype="text/html")


def _page(body: str) -> flask.Response:
    data = body.encode()
    # The whole survey is one page (~46 KB, ~6 KB compressed): for a respondent on a
    # phone's data connection it is worth compressing when the browser accepts it.
    compress = "gzip" in flask.request.headers.get("Accept-Encoding", "")
    response = flask.Response(gzip.compress(data, compresslevel=6) if compress else data,
                              mimetype="text/html")
    response.headers["Vary"] = "Accept-Encoding"
    if compress:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Cache-Control"] = "no-store"
    # same-origin: the invitation token in the URL never leaks to another site, and the
    # browser still sends our own Origin with the post (no-referrer would send "null")
    response.headers["Referrer-Policy"] = "same-origin"
    return response


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
