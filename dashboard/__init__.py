"""The dashboard: a Dash app over the published layer only (through `published.reader`).

app.py         create_app(settings): the Flask server, security headers, the page router
login.py, accounts.py, sessions.py   sign-in, throttling, server-side sessions
access.py      who sees what: roles, sites, how sites are named for each viewer
view.py        one authorised view (viewer, site, wave) built from the URL
data.py        the dashboard's name for the published layer's reader
pages/         one module a page, each with layout(view) and its own callbacks
figures.py, components.py   pure builders of charts and tables
"""
