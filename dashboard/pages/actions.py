"""Actions: a site's action plan against the principles, kept from wave to wave.

A director keeps their own site's plan, an admin any site's (site selector); a researcher
sees only how many actions each principle has in each status across all sites, never
the text and never a site. The plan lives in its own file (`plans.store`), not in the
published layer, so a pipeline run does not touch it.

Changes are plain HTML forms posted to `/actions/save` (a Flask route, like sign-in), so
they work without any callback machinery and every rule is checked on the server: the
form's CSRF token against the session's (`hmac.compare_digest`, as `dashboard.login`
does), the page's roles, the posted site against the viewer's (`authorise_site`), the
action against that site (an id from another site is refused with 403, as is an unknown
one, so a refusal never confirms another site's action exists), then the store's own
validation, whose message is shown on the page. The board's CSV or XLSX comes from
`/download/actions`, checked the same way. Text is shown by Dash as text, never markup.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from urllib.parse import urlencode

import flask
import pandas as pd
from dash import dcc, html

from dashboard.access import AccessDenied, authorise_page, authorise_site, current_viewer
from dashboard.components import notice, table
from dashboard.view import View
from plans.store import (CLOSED_STATUSES, MAX_NOTE, MAX_OWNER_ROLE, MAX_WHAT, OPEN_STATUSES,
                         STATUSES, ActionBook, ActionNotFound, PlanError)
from published.layout import MOVED_CAVEAT
from published.moved import DISPLAY_COLUMNS, moved_display, moved_rows

TITLE = "Actions"
NEEDS_SITE = "unless researcher"
SAVE_PATH = "/actions/save"
DOWNLOAD_PATH = "/download/actions"
_MESSAGE = "actions_message"
#: The forms' layout inline (the shared style sheet has no form rules beyond sign-in).
_FORM_STYLE = {"border": "1px solid #D0D0D0", "borderRadius": "6px", "padding": "12px",
               "margin": "12px 0"}
_FIELD_STYLE = {"display": "inline-flex", "flexDirection": "column", "margin": "0 16px 8px 0",
                "verticalAlign": "top", "maxWidth": "100%", "minWidth": 0}
#: Every control fits a phone's card and is a finger's height.
_CONTROL_STYLE = {"maxWidth": "100%", "boxSizing": "border-box", "minHeight": "2.5rem",
                  "fontSize": "1rem"}
_BUTTON_STYLE = {"minHeight": "2.75rem", "fontSize": "1rem", "margin": "4px 8px 4px 0"}
#: A new action's review date, by default: about six months after it starts.
DEFAULT_REVIEW_DAYS = 182


# -- the store, as the dashboard sees it ---------------------------------------------------

def plans_book() -> ActionBook:
    """The app's plans file, with the published layer's sites and principles as the ones
    an action may name."""
    data = flask.current_app.config["CULTURE_DATA"]
    return ActionBook(flask.current_app.config["CULTURE_PLANS"],
                      known_sites=data.sites()["site_code"],
                      known_principles=_principles(data))


def _principles(data) -> list[str]:
    measures = data.measures()
    return list(measures.loc[measures["measure_kind"] == "principle", "measure"])


def site_actions(site: str, statuses=None) -> tuple[pd.DataFrame, str | None]:
    """A site's actions (optionally of some statuses) and, if the plan could not be read
    (another process holds it), why: pages show what they can rather than fail."""
    try:
        return plans_book().list(site=site, status=statuses), None
    except PlanError as error:
        return _no_actions(), str(error)


def _no_actions() -> pd.DataFrame:
    from plans.store import COLUMNS

    return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})


def open_actions_list(actions: pd.DataFrame) -> html.Div | None:
    """A principle's open actions for the Overview: what, the owning role, the dates."""
    if actions.empty:
        return None
    return html.Div([
        html.H4("Your open actions"),
        html.Ul([html.Li([html.Strong(a.what), f" ({a.status}; owner: {a.owner_role}; "
                          f"started {a.start.isoformat()}, review {a.review.isoformat()})"])
                 for a in actions.itertuples()])], className="open-actions")


# -- CSRF, as the sign-in form does it ----------------------------------------------------

def csrf_token() -> str:
    return flask.session.setdefault("csrf", secrets.token_urlsafe(24))


def _csrf_ok(sent: str | None) -> bool:
    expected = flask.session.get("csrf", "")
    return bool(expected) and hmac.compare_digest((sent or "").encode("utf-8"),
                                                  expected.encode("utf-8"))


# -- the page ----------------------------------------------------------------------------

def layout(view: View) -> html.Div:
    if view.viewer.role == "researcher":
        return _counts_layout(view)
    message = flask.session.pop(_MESSAGE, None)
    actions, problem = site_actions(view.site)
    names = view.data.measure_names(("principle",))
    guide = view.data.actions()
    token = csrf_token()
    parts = [html.H1(f"{view.site_label}: action plan"), _site_control(view),
             html.P("Record what the site will do about its gaps, principle by principle. "
                    "Actions are not tied to a survey wave: they carry over to the next "
                    "wave until they are marked done or dropped, and the next wave's "
                    "results show whether the principle moved.", className="lead"),
             html.P("Name the role that owns each action (for example Medical director, "
                    "Guardian of safe working), not a person: the plan outlives the people "
                    "in post.")]
    if message:
        kind, text = message
        parts.append(html.P(text, className=f"notice notice-{kind}",
                            role="alert" if kind == "error" else "status", id="actions-message"))
    if problem:
        parts.append(notice(problem, "error"))
    open_rows = actions[actions["status"].isin(OPEN_STATUSES)]
    closed = actions[actions["status"].isin(CLOSED_STATUSES)]
    parts.append(html.P([
        "For the board: ",
        html.A("the plan as CSV", id="actions-export-csv",
               href=f"{DOWNLOAD_PATH}?" + urlencode({"site": view.site, "format": "csv"})),
        ", ",
        html.A("as XLSX", id="actions-export-xlsx",
               href=f"{DOWNLOAD_PATH}?" + urlencode({"site": view.site, "format": "xlsx"})),
        "."], className="downloads-line"))
    parts.append(html.H2(f"Open actions ({len(open_rows)})"))
    if open_rows.empty:
        parts.append(html.P("No open actions yet: add one below.", id="actions-none"))
    parts += [_edit_form(view, row, names, token) for row in open_rows.itertuples()]
    parts.append(_add_form(view, names, guide, token))
    if len(closed):
        parts.append(html.H2(f"Closed actions ({len(closed)})"))
        parts.append(table(closed.assign(principle=closed["principle"].map(names)),
                           {"principle": "Principle", "what": "Action", "owner_role": "Owner",
                            "start": "Start", "review": "Review", "status": "Status",
                            "note": "Note"}, "Actions done or dropped"))
    parts += moved_section(view.data, view.site, actions)
    return html.Div(parts, id="actions-page")


def moved_section(data, site: str, actions: pd.DataFrame) -> list:
    """Did it move? for each of the site's actions not dropped: its principle's change
    from the wave before it started to the first wave after, against the peer group's
    (`published.moved`), with the caveat that it is not proof of cause."""
    kept = actions[actions["status"] != "dropped"]
    if kept.empty:
        return []
    rows = moved_display(moved_rows(data, site, kept), data.measure_names(("principle",)))
    return [html.H2("Did it move?", id="actions-moved"),
            html.P("Each action's principle: the change in this site's score, out of 100, "
                   "from the last wave before the action started to the first wave after, "
                   "against the average change of the other sites of its peer group over "
                   "the same waves. \"Clearly\" when the 95% interval of the difference "
                   "excludes 0; not compared with fewer than 3 other sites or before a wave "
                   "after the action."),
            html.P(MOVED_CAVEAT, className="notice notice-info"),
            table(rows, DISPLAY_COLUMNS, "Did it move? Each action against the peer group")]


def _site_control(view: View) -> html.Div:
    """An admin picks the site; a director's is fixed. The shell's navigation callback
    reads a wave too: the plan is not per wave, so it rides along hidden."""
    choices = view.viewer.site_options(list(view.data.sites()["site_code"]))
    labels = view.labels()
    wave = dcc.Input(id="wave-select", type="hidden", value=str(view.wave))
    if len(choices) > 1:
        return html.Div([html.Div([
            html.Label("Site", htmlFor="site-select"),
            dcc.Dropdown(id="site-select", value=view.site, clearable=False,
                         options=[{"label": labels(c), "value": c} for c in choices])],
            className="control"), wave], className="controls")
    return html.Div([html.Div([html.Span("Site", className="control-label"),
                               html.Strong(labels(view.site))], className="control"),
                     dcc.Input(id="site-select", type="hidden", value=view.site), wave],
                    className="controls")


def _form(children: list, form_id: str, view: View, token: str) -> html.Form:
    return html.Form([dcc.Input(type="hidden", name="csrf", value=token),
                      dcc.Input(type="hidden", name="site", value=view.site), *children],
                     action=flask.request.script_root + SAVE_PATH, method="post",
                     id=form_id, className="action-form", style=_FORM_STYLE)


def _field(label: str, control, field_id: str) -> html.Div:
    if isinstance(control, dcc.Input):   # wide enough to show a date or a role whole
        control.style = {"width": "11em" if getattr(control, "type", None) == "date"
                         else "20em"} | _CONTROL_STYLE
    elif isinstance(control, dcc.Textarea):
        control.style = {"width": "40em"} | _CONTROL_STYLE
    elif isinstance(control, html.Select):
        control.style = _CONTROL_STYLE
    return html.Div([html.Label(label, htmlFor=field_id), control], className="field",
                    style=_FIELD_STYLE)


def _status_select(field_id: str, current: str) -> html.Select:
    return html.Select([html.Option(s, value=s, selected=s == current) for s in STATUSES],
                       name="status", id=field_id)


def _edit_form(view: View, row, names: dict[str, str], token: str) -> html.Form:
    prefix = f"actions-{row.id}"
    return _form([
        html.H3([f"{names.get(row.principle, row.principle)}: ", row.what],
                id=f"{prefix}-title"),
        dcc.Input(type="hidden", name="id", value=str(row.id)),
        html.Div([
            _field("Owner (a role)", dcc.Input(id=f"{prefix}-owner", name="owner_role",
                                               value=row.owner_role, required=True,
                                               maxLength=MAX_OWNER_ROLE), f"{prefix}-owner"),
            _field("Start", dcc.Input(id=f"{prefix}-start", name="start", type="date",
                                      value=row.start.isoformat(), required=True),
                   f"{prefix}-start"),
            _field("Review", dcc.Input(id=f"{prefix}-review", name="review", type="date",
                                       value=row.review.isoformat(), required=True),
                   f"{prefix}-review"),
            _field("Status", _status_select(f"{prefix}-status", row.status),
                   f"{prefix}-status"),
        ], className="fields"),
        _field("Note", dcc.Textarea(id=f"{prefix}-note", name="note", value=row.note,
                                    maxLength=MAX_NOTE, rows=2), f"{prefix}-note"),
        html.Div([
            html.Button("Save changes", type="submit", id=f"{prefix}-save",
                        style=_BUTTON_STYLE),
            html.Button("Mark done", type="submit", name="close", value="done",
                        id=f"{prefix}-done", style=_BUTTON_STYLE),
            html.Button("Drop", type="submit", name="close", value="dropped",
                        id=f"{prefix}-drop", className="secondary", style=_BUTTON_STYLE),
        ], className="form-buttons"),
    ], f"{prefix}-form", view, token)


def _add_form(view: View, names: dict[str, str], guide: pd.DataFrame,
              token: str) -> html.Form:
    today = dt.date.today()
    options = [html.Option("(none: my own words below)", value="")]
    for principle, rows in guide.groupby("principle", sort=True):
        options.append(html.Optgroup([html.Option(t, value=t) for t in rows["title"]],
                                     label=f"{principle} {names.get(principle, '')}"))
    return _form([
        html.H2("Add an action"),
        html.Div([
            _field("Principle", html.Select(
                [html.Option(f"{p} {name}", value=p) for p, name in sorted(names.items())],
                name="principle", id="actions-new-principle"), "actions-new-principle"),
            _field("One of the guide's actions for that principle", html.Select(
                options, name="guide", id="actions-new-guide"), "actions-new-guide"),
            _field("Or in your own words", dcc.Input(
                id="actions-new-what", name="what", maxLength=MAX_WHAT, value=""),
                "actions-new-what"),
        ], className="fields"),
        html.Div([
            _field("Owner (a role such as Medical director, not a name)", dcc.Input(
                id="actions-new-owner", name="owner_role", required=True,
                maxLength=MAX_OWNER_ROLE, value=""),
                "actions-new-owner"),
            _field("Start", dcc.Input(id="actions-new-start", name="start", type="date",
                                      value=today.isoformat(), required=True),
                   "actions-new-start"),
            _field("Review", dcc.Input(
                id="actions-new-review", name="review", type="date", required=True,
                value=(today + dt.timedelta(days=DEFAULT_REVIEW_DAYS)).isoformat()),
                "actions-new-review"),
            _field("Status", _status_select("actions-new-status", "planned"),
                   "actions-new-status"),
        ], className="fields"),
        _field("Note", dcc.Textarea(id="actions-new-note", name="note", value="",
                                    maxLength=MAX_NOTE, rows=2), "actions-new-note"),
        html.Button("Add the action", type="submit", id="actions-new-add",
                    style=_BUTTON_STYLE),
    ], "actions-new-form", view, token)


def _counts_layout(view: View) -> html.Div:
    """A researcher's view: counts by principle and status across all sites, no text."""
    try:
        counts = plans_book().counts_by_principle_status()
    except PlanError as error:
        return html.Div([html.H1("Action plans across sites"), notice(str(error), "error")])
    names = view.data.measure_names(("principle",))
    wide = (counts.pivot(index="principle", columns="status", values="actions")
            .reindex(index=sorted(names), columns=list(STATUSES)).fillna(0).astype(int)
            .reset_index())
    wide.insert(1, "name", wide["principle"].map(names))
    return html.Div([
        html.H1("Action plans across sites"),
        html.P("How many actions sites have recorded against each principle, by status. "
               "Only counts: what each action says, and which site recorded it, are the "
               "site's own.", className="lead"),
        table(wide, {"principle": "Principle", "name": "Name",
                     **{s: s.capitalize() for s in STATUSES}},
              "Actions by principle and status, all sites", {s: 0 for s in STATUSES}),
    ], id="actions-page")


# -- the routes ---------------------------------------------------------------------------

def register(app) -> None:
    app.server.add_url_rule(SAVE_PATH, "actions_save", save, methods=["POST"])
    app.server.add_url_rule(DOWNLOAD_PATH, "actions_download", download)


def _site_for_writing(requested: str | None) -> str:
    """The posted site, if the viewer keeps its plan (AccessDenied, HTTP 403, if not)."""
    viewer = current_viewer()
    authorise_page(viewer, "/actions")
    if viewer.role == "researcher":
        raise AccessDenied("researchers see counts of actions only, not sites' plans")
    if not requested:
        raise AccessDenied("no site named")
    known = list(flask.current_app.config["CULTURE_DATA"].sites()["site_code"])
    return authorise_site(viewer, requested, known)


def save():
    """Add, change or close an action from one of the page's forms; back to the page."""
    form = flask.request.form
    if not _csrf_ok(form.get("csrf")):
        return flask.Response("Refused: the form had expired or did not come from this "
                              "dashboard. Reload the Actions page and try again.", 403,
                              mimetype="text/plain")
    site = _site_for_writing(form.get("site"))
    user = current_viewer().account.username
    book = plans_book()
    action_id = form.get("id")
    try:
        if action_id:
            if form.get("close"):
                done = book.close(action_id, user, form["close"], site=site)
                said = f"Action closed as {done['status']}."
            else:
                changes = {f: form[f] for f in ("owner_role", "start", "review", "status",
                                                "note") if f in form}
                book.update(action_id, user, site=site, **changes)
                said = "Changes saved."
        else:
            added = book.add(site, form.get("principle", ""), _what(form, book),
                             form.get("owner_role", ""), form.get("start", ""),
                             form.get("review", ""), user,
                             status=form.get("status", "planned"), note=form.get("note", ""))
            said = f"Action added: {added['what']}."
        flask.session[_MESSAGE] = ("info", said)
    except ActionNotFound:
        raise AccessDenied(f"you do not have access to action {action_id!r}") from None
    except PlanError as error:
        flask.session[_MESSAGE] = ("error", f"Not saved: {error}")
    return flask.redirect("/actions?" + urlencode({"site": site}), code=303)


def _what(form, book: ActionBook) -> str:
    """The guide's action picked for the principle, or the user's own words (not both)."""
    picked, own = (form.get("guide") or "").strip(), (form.get("what") or "").strip()
    if picked and own:
        raise PlanError("pick one of the guide's actions or write your own words, not both")
    if not picked:
        if not own:
            raise PlanError("say what the action is: pick one of the guide's actions for "
                            "the principle, or write your own words")
        return own
    guide = flask.current_app.config["CULTURE_DATA"].actions()
    principle = (form.get("principle") or "").strip().upper()
    titles = set(guide.loc[guide["principle"] == principle, "title"])
    if picked not in titles:
        raise PlanError(f"{picked!r} is not one of the guide's actions for {principle}; "
                        "pick one listed under that principle, or write your own words")
    return picked


def download():
    """The board's file of a site's plan (an admin without a site: every site's)."""
    from plans.board import FORMATS, plan_bytes

    viewer = current_viewer()
    requested = flask.request.args.get("site")
    site = (None if viewer.role == "admin" and not requested
            else _site_for_writing(requested or viewer.own_site))
    fmt = flask.request.args.get("format", "csv")
    if fmt not in FORMATS:
        return flask.Response(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}",
                              400, mimetype="text/plain")
    try:
        payload = plan_bytes(plans_book().list(site=site), fmt)
    except PlanError as error:
        return flask.Response(str(error), 503, mimetype="text/plain")
    media = ("text/csv" if fmt == "csv" else
             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    name = f"action-plan-{site or 'all-sites'}.{fmt}"
    return flask.Response(payload, mimetype=media, headers={
        "Content-Disposition": f'attachment; filename="{name}"'})
