"""The dashboard's pages, in navigation order: path -> module.

Each module has TITLE, NEEDS_SITE (True: a site page; "unless researcher": a site page
for admins and directors, an all-sites page for researchers; False), `layout(view)`
and, if it has controls of its own, `register(app)`.
"""

from dashboard.pages import (actions, benchmark, drivers, equity, export, fieldwork, glossary,
                             methods, overview, principle, quality, trends)

PAGES = {
    "/": overview,
    "/principle": principle,
    "/benchmark": benchmark,
    "/trends": trends,
    "/equity": equity,
    "/drivers": drivers,
    "/actions": actions,
    "/quality": quality,
    "/export": export,
    "/fieldwork": fieldwork,
    "/methods": methods,
    "/glossary": glossary,
}
