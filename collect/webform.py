"""The respondent's web form: `create_collect_app(...)` serves the instrument anonymously.

One link per site and wave (``/s/A/2026``), optionally with a single-use invitation
token (``/s/A/2026?t=...``). The page is plain HTML that works without JavaScript
(every section on one page); with JavaScript it shows one section at a time with
progress. Each question is a fieldset whose legend is the statement, with a labelled
radio button per answer, "Don't know / prefer not to say" always offered, nothing
required; the attributes are marked optional. Keyboard and screen-reader friendly
(WCAG 2.1 AA: labels, focus outline, 4.5:1 contrast, 44 px targets).

A statement asked only of some respondents (an item's `asked_if`, e.g. pw07 only of
doctors outside training) follows the exports' branching: the question it depends on
comes first ("About your role"), the script shows the statement only once one of the
named answers is picked, and without the script a note under it says whom it is for.
The server drops an answer to it from anyone else (`route_answers`): stored as missing,
never refused, and for them an unanswered statement is simply one they were not asked.

The page names the organisation it is for and who runs the survey, links a privacy
notice the server serves itself (``/privacy``), and says where to get support now, from
the site's own details (`SurveySite`, from the sites table), again on the thank-you page.
An invitation link is checked when the form opens, so a bogus or used link gets a kind
page at once rather than after the respondent has typed every answer; a closed wave
(`culture waves close`) gets a kind 410 page both when the form opens and when answers
are sent.

Every post is checked before anything is stored, and refused with a clear 4xx when:
the body is too large (413), the form token is missing or forged (403: cross-site
request forgery protection, since a token is signed for this site and wave), the
Origin is another site (403), a field is unknown or a code out of range (400), an
invitation token is unknown or used (403 / 409), the wave has closed (410), or the body is
not an HTML form post (415). Accepted answers go to the durable inbox (`collect.inbox`), and only then is the
respondent thanked.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from html import escape
from http import HTTPStatus
from urllib.parse import parse_qs, unquote_to_bytes, urlparse

from collect.inbox import Inbox, TokenRefused, WaveClosed
from survey.instrument import Instrument, Item
from survey.questionnaire import (ABOUT_YOU_SECTION, ROUTING_NOTE, ROUTING_SECTION,
                                  closing_attributes, count_in_words, for_respondents,
                                  routing_attributes)

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


@dataclass(frozen=True)
class SurveySite:
    """What the form tells a site's respondents: the organisation, who to ask about the
    survey, and where to get support now (all but the name optional)."""

    code: str
    name: str
    contact_email: str | None = None
    support_text: str | None = None
    support_url: str | None = None


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
    """Answers of a post as {field: code or option}, less any to an item the respondent
    was not asked (`route_answers`); SubmissionError listing every problem."""
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
    route_answers(instrument, answers)
    return answers


def route_answers(instrument: Instrument, answers: dict) -> list[str]:
    """Drop, in place, answers to items the respondent was not asked (`asked_if`); returns
    their ids.

    With JavaScript the form hides such an item, but without it the item is shown with
    a note, and a respondent may answer it and then pick another role (or none). The
    answer is then stored as missing, as the exports' branching would have it; the post
    is not refused, since nothing the respondent did was wrong.
    """
    dropped = [item.id for item in instrument.items
               if item.asked_if is not None and item.id in answers
               and answers.get(item.asked_if.attribute) not in item.asked_if.codes]
    for ident in dropped:
        del answers[ident]
    return dropped


class CollectApp:
    """The survey server as a plain WSGI application (two routes, no framework).

    It is the busiest code of the product: each respondent fetches the page and posts
    once, and a trust's survey can bring hundreds a second. A web framework's request
    and response objects cost more per request than the work itself, so requests are
    handled straight from the WSGI environ.
    """

    def __init__(self, instrument: Instrument, inbox: Inbox, surveys: set[tuple[str, int]],
                 require_tokens: bool = False, secret: bytes | None = None,
                 sites: dict[str, SurveySite] | None = None, run_by: str | None = None,
                 contact: str | None = None, min_group_size: int = 10) -> None:
        # The introduction names the group size this trust shows, whatever the wording says.
        self.instrument = for_respondents(instrument, min_group_size)
        self.inbox, self.surveys = inbox, surveys
        self.min_group_size = min_group_size
        self.require_tokens = require_tokens
        self.secret = secret or inbox.form_secret()
        self.sites = sites or {}
        self.run_by, self.contact = run_by, contact
        self._rendered: dict[tuple[str, int], str] = {}

    def site(self, code: str) -> SurveySite:
        return self.sites.get(code) or SurveySite(code, f"site {code}")

    def about(self, code: str) -> About:
        """Who runs the survey for a site and how to reach them."""
        site = self.site(code)
        return About(site, self.run_by or f"the survey team at {site.name}",
                     site.contact_email or self.contact)

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
        path = environ.get("PATH_INFO", "")
        method = environ["REQUEST_METHOD"]
        if path == "/privacy" and method in ("GET", "HEAD"):
            code = parse_qs(environ.get("QUERY_STRING", "")).get("site", [""])[0]
            return _page("How your answers are used", privacy_notice(
                self.about(code) if code in {s for s, _ in self.surveys} else None,
                self.min_group_size), 200)
        match = _SURVEY_PATH.fullmatch(path)
        survey = match and (match[1], int(match[2]))
        if survey not in self.surveys:
            return _message("There is no survey at this address; please check your link.", 404)
        if self.inbox.wave_closed(survey[1]):
            return self.closed(*survey)
        if method in ("GET", "HEAD"):
            return self.form(environ, *survey)
        if method == "POST":
            return self.submit(environ, *survey)
        status, headers, body = _message("This address only accepts the survey form.", 405)
        return status, [*headers, ("Allow", "GET, HEAD, POST")], body

    def closed(self, site: str, wave: int):
        about = self.about(site)
        return _page("This survey has closed",
                     f"<p role='alert'>The {wave} survey for {escape(about.site.name)} has "
                     "closed, so it no longer takes answers. Thank you for wanting to "
                     "take part.</p>" + _contact(about) + support_html(about.site), 410)

    def refused_invitation(self, site: str, state: str):
        """The kind page for an invitation link that cannot be used (before any typing)."""
        about = self.about(site)
        if state == "used":
            return _page("This invitation has already been used",
                         "<p role='alert'>Answers have already been sent with this invitation "
                         "link, and each link can be used only once. If that was you, thank "
                         "you: your answers are saved.</p>" + _contact(about)
                         + support_html(about.site), 409)
        return _page("This invitation link is not recognised",
                     "<p role='alert'>This link does not match an invitation for this "
                     "survey. It may have been cut short when it was copied: please open "
                     "the full link from your invitation.</p>" + _contact(about)
                     + support_html(about.site), 403)

    def form(self, environ: dict, site: str, wave: int):
        token = parse_qs(environ.get("QUERY_STRING", "")).get("t", [""])[0]
        if self.require_tokens and not token:
            return _message("Please use the personal link from your invitation.", 403)
        if token:
            state = self.inbox.invitation_state(token, site, wave)
            if state != "unused":
                return self.refused_invitation(site, state)
        # The page is the same for everyone but its two tokens: render it once.
        if (site, wave) not in self._rendered:
            self._rendered[(site, wave)] = render_form(self.instrument, site, wave,
                                                       _FORM_SLOT, _INVITATION_SLOT,
                                                       self.about(site), self.min_group_size)
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
        except WaveClosed:
            return self.closed(site, wave)
        return self.thanks(site, outcome == "duplicate")

    def thanks(self, site: str, duplicate: bool):
        about = self.about(site)
        said = ("<p role='status'>Your answers have been saved anonymously"
                + (": they had already been received, so nothing more is needed." if duplicate
                   else ".") + "</p>"
                "<p>Nobody can tell which answers are yours. Results are shown only for "
                f"groups of {count_in_words(self.min_group_size)} or more people.</p>")
        return _page("Thank you", said + support_html(about.site, after=True)
                     + _contact(about), 200)


@dataclass(frozen=True)
class About:
    """Who a site's survey is for and run by, and the address for questions about it."""

    site: SurveySite
    run_by: str
    contact: str | None


def create_collect_app(instrument: Instrument, inbox: Inbox, surveys: set[tuple[str, int]],
                       require_tokens: bool = False, secret: bytes | None = None,
                       sites: dict[str, SurveySite] | None = None, run_by: str | None = None,
                       contact: str | None = None, min_group_size: int = 10) -> CollectApp:
    """The survey server for `surveys` (site, wave) pairs, storing into `inbox`; `sites`
    names each site's organisation, contact and support, `run_by` who runs the survey."""
    return CollectApp(instrument, inbox, surveys, require_tokens, secret, sites, run_by,
                      contact, min_group_size)


_SURVEY_PATH = re.compile(r"/s/([^/]+)/([0-9]{1,6})")
_STATUS = {code: f"{code} {HTTPStatus(code).phrase}"
           for code in (200, 400, 403, 404, 405, 409, 410, 413, 415)}


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


def _page(title: str, content_html: str, status: int):
    """A kind page: a heading and prepared HTML (everything in it already escaped)."""
    body = f"<main class='box'><h1>{escape(title)}</h1>{content_html}</main>"
    return status, [("Content-Type", "text/html; charset=utf-8"),
                    ("Cache-Control", "no-store")], _wrap(title, body).encode()


def _mailto(address: str) -> str:
    return f"<a href='mailto:{escape(address, quote=True)}'>{escape(address)}</a>"


def _contact(about: About) -> str:
    if about.contact:
        return (f"<p>Questions about the survey: {escape(about.run_by)}, "
                f"{_mailto(about.contact)}.</p>")
    return ("<p>Questions about the survey: please ask the person who sent you the "
            "link.</p>")


#: Said on every site's pages, after its own details: services open to every doctor in
#: England, whatever their site. As the services describe themselves: NHS Practitioner
#: Health is a free, confidential NHS service for doctors and dentists working in England
#: with a mental health or addiction concern, by self-referral (not a crisis line: its
#: phones are staffed in the daytime); Samaritans answer 116 123 free, 24 hours a day,
#: every day of the year.
GENERAL_SUPPORT = ("NHS Practitioner Health (practitionerhealth.nhs.uk) is a free, "
                   "confidential NHS service for doctors and dentists in England with a "
                   "mental health or addiction concern; you can refer yourself. To talk to "
                   "someone now, call Samaritans on 116 123: free, 24 hours a day, every "
                   "day. In an emergency call 999.")


def support_html(site: SurveySite, after: bool = False) -> str:
    """Where to get support now: the site's own words and link, then the general services."""
    heading = ("If anything in this survey has been hard to think about" if after
               else "If you need support now")
    own = ""
    if site.support_text:
        own += f"<p>{escape(site.support_text)}</p>"
    if site.support_url:
        own += (f"<p><a href='{escape(site.support_url, quote=True)}' rel='noopener'>"
                f"Support at {escape(site.name)}</a></p>")
    return (f"<aside class='support' aria-labelledby='support-h'><h2 id='support-h'>"
            f"{escape(heading)}</h2>{own}<p>{escape(GENERAL_SUPPORT)}</p></aside>")


def privacy_notice(about: About | None, min_group_size: int = 10) -> str:
    """The privacy notice, in the project's own words (HTML)."""
    who = (f"<p>This survey is run by {escape(about.run_by)} for {escape(about.site.name)}."
           "</p>" + _contact(about)) if about else ""
    return who + (
        "<h2>What is kept</h2><p>Your answers, the site and survey year they are for, how "
        "long the form took in seconds, and the day (not the time) they were sent. Nothing "
        "else: not your name, email or network address, and no cookies.</p>"
        "<h2>Invitation links</h2><p>If you were sent a personal link, it only stops the "
        "same link being used twice. Only a scrambled copy of the link is kept, and it is "
        "marked as used together with others, so nobody, not even the survey team, can "
        "tell which answers came from which link.</p>"
        "<h2>What is shown</h2><p>Results are shown only as totals for groups of at least "
        f"{count_in_words(min_group_size)} people (never fewer than five, whatever the "
        "settings). Nobody sees one person's answers. The optional questions about you are "
        "used only to compare such groups.</p>"
        "<h2>Your choice</h2><p>Every question can be skipped, and you can stop at any "
        "time: nothing is kept until you press \u201cSend my answers\u201d. Because answers "
        "cannot be traced back to you, they cannot be withdrawn once sent.</p>")


def _wrap(title: str, body: str, script: str = "") -> str:
    return (f"<!DOCTYPE html><html lang='en-GB'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
            f"<body>{body}{script}</body></html>")


def render_form(instrument: Instrument, site: str, wave: int, form_token: str,
                invitation: str = "", about: About | None = None,
                min_group_size: int = 10) -> str:
    """The whole survey as one accessible HTML page (sections shown one at a time by JS)."""
    about = about or About(SurveySite(site, f"site {site}"), f"the survey team at site {site}",
                           None)
    sections = [("About this survey",
                 f"<p>{escape(instrument.introduction)}</p>" + support_html(about.site))]
    # Neutral headings ("Questions, part 2"): a scale's name ("Help-seeking stigma")
    # would tell respondents what is being measured and colour their answers.
    groups = [instrument.items_of(scale.id) for scale in instrument.scales]
    groups += [tuple(item for item in instrument.items if item.scale is None)]
    groups = [g for g in groups if g]
    # A question some statements depend on (`asked_if`) comes before them, as in every
    # export, so the form can leave those statements out for everyone else.
    routing = routing_attributes(instrument)
    if routing:
        sections.append((ROUTING_SECTION, f"<p>{escape(ROUTING_NOTE)}</p>"
                         + "".join(_attribute(a) for a in routing)))
    for number, items in enumerate(groups, start=1):
        sections.append((f"Questions, part {number} of {len(groups)}",
                         "".join(_question(instrument, item) for item in items)))
    sections.append((ABOUT_YOU_SECTION,
                     "<p>These questions are optional. They are used only to compare groups "
                     f"of {count_in_words(min_group_size)} or more people.</p>"
                     + "".join(_attribute(a) for a in closing_attributes(instrument))))
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
    header = (f"<header class='about'><p class='for'>For staff of "
              f"<strong>{escape(about.site.name)}</strong>: the {wave} survey.</p>"
              f"<p>Run by {escape(about.run_by)}"
              + (f" ({_mailto(about.contact)})" if about.contact else "")
              + f". <a href='/privacy?site={escape(site, quote=True)}'>How your answers are "
              "used (privacy notice)</a></p></header>")
    body = (f"<main><h1>{escape(instrument.title)}</h1>{header}"
            f"<form method='post' action='/s/{escape(site)}/{wave}' id='survey'>"
            f"<input type='hidden' name='form_token' value='{escape(form_token)}'>"
            + f"<input type='hidden' name='t' value='{escape(invitation)}'>"
            + "<input type='hidden' name='duration_seconds' id='duration' value=''>"
            + "".join(parts) + "</form></main>")
    return _wrap(instrument.title, body, _SCRIPT)


def _question(instrument: Instrument, item: Item) -> str:
    scale = instrument.response_scale(item.response_scale)
    options = [(o.code, o.label) for o in scale.options] + [(o.code, o.label)
                                                             for o in scale.missing]
    radios = "".join(
        f"<label class='option'><input type='radio' name='{item.id}' value='{code}'>"
        f"<span>{escape(label)}</span></label>" for code, label in options)
    routed, note = "", ""
    if item.asked_if is not None:
        # The script shows the statement only when the role answered is one it names;
        # without the script the note says whom it is for (the server drops the rest).
        routed = (f" data-asked-attribute='{item.asked_if.attribute}'"
                  f" data-asked-in='{' '.join(item.asked_if.codes)}'")
        note = f"<p class='routing-note'>{escape(asked_note(instrument, item))}</p>"
    # "scale": the answers of one question read left to right on one row (stacked on a
    # phone); the attributes' longer lists wrap as a grid.
    return (f"<fieldset class='question'{routed}><legend>{escape(item.text)}</legend>"
            f"{note}<div class='options scale'>{radios}</div></fieldset>")


def asked_note(instrument: Instrument, item: Item) -> str:
    """The line under a statement asked only of some, for a form without its script:
    'Please answer only if your answer to "Which best describes ...?" was: ...'."""
    attribute = next(a for a in instrument.attributes if a.id == item.asked_if.attribute)
    labels = [o.label for o in attribute.options if o.code in item.asked_if.codes]
    return (f"Please answer only if your answer to \u201c{attribute.question}\u201d was: "
            + "; ".join(labels) + ".")


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
main{max-width:1000px;margin:0 auto;padding:12px 16px 40px}
h1{font-size:1.5rem}h2{font-size:1.25rem}
a{color:#004f7a}
.about{margin:-6px 0 8px}.about p{margin:2px 0}
.support{border-left:5px solid #005a8c;background:#eaf3f8;border-radius:6px;margin:16px 0;
padding:6px 16px}
.support h2{font-size:1.1rem;margin:8px 0 4px}
.question{border:1px solid #c8c8c8;border-radius:8px;background:#fff;margin:0 0 14px;
padding:10px 12px;min-width:0}
legend{font-weight:600;padding:0 4px;float:left;width:100%;box-sizing:border-box;
overflow-wrap:anywhere}
.options{clear:both;display:flex;flex-wrap:wrap;gap:6px;padding-top:6px}
.option{display:flex;align-items:center;gap:8px;min-height:44px;padding:4px 10px;
border:1px solid #767676;border-radius:6px;cursor:pointer;flex:1 1 180px;min-width:0;
box-sizing:border-box;overflow-wrap:anywhere}
.options.scale{flex-wrap:nowrap}
.options.scale .option{flex:1 1 0;flex-direction:column;justify-content:flex-start;
text-align:center;gap:4px;padding:8px 6px}
.option input{width:22px;height:22px;margin:0;flex:none}
.option:focus-within{outline:3px solid #b35806;outline-offset:2px}
.optional{font-weight:400;color:#4a4a4a}
.routing-note{clear:both;margin:4px 0 0;padding:0 4px;color:#4a4a4a;font-size:.95rem}
.js .routing-note{display:none}
.progress{color:#4a4a4a;margin:16px 0 0}
.nav{display:flex;gap:10px;justify-content:space-between;margin:8px 0 24px}
button{font-size:1rem;min-height:44px;padding:8px 20px;border-radius:6px;border:2px solid
#005a8c;background:#005a8c;color:#fff;cursor:pointer}
button.back{background:#fff;color:#005a8c}
button:focus-visible{outline:3px solid #b35806;outline-offset:2px}
.box{background:#fff;border-radius:8px;margin-top:8vh;padding:16px 22px;max-width:720px}
.js .step{display:none}.js .step.current{display:block}
html:not(.js) .nav button[type=button]{display:none}
@media (max-width:640px){
.options.scale{flex-direction:column}
.options.scale .option{flex:none;flex-direction:row;text-align:left;gap:10px;
min-height:48px;padding:6px 12px}
}
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
  // A statement asked only of some roles shows only once one of them is picked; a
  // hidden one is disabled too, so an answer given before the role changed is not sent.
  var routed = Array.prototype.slice.call(
    document.querySelectorAll('fieldset[data-asked-attribute]'));
  function route(){
    routed.forEach(function(f){
      var picked = document.querySelector(
        'input[name="' + f.getAttribute('data-asked-attribute') + '"]:checked');
      var asked = !!picked &&
        f.getAttribute('data-asked-in').split(' ').indexOf(picked.value) >= 0;
      f.hidden = !asked; f.disabled = !asked;
    });
  }
  route();
  document.getElementById('survey').addEventListener('change', route);
  document.getElementById('survey').addEventListener('submit', function(){
    document.getElementById('duration').value = Math.round((Date.now() - started) / 1000);
  });
})();
</script>"""
