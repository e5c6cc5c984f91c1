"""The published layer: its layout and the one read API every reader uses (read-only,
aggregates only; nothing here reads respondents).

layout.py  the tables, the columns readers rely on, the attribute titles and the layout
           version: the writer (`pipeline.publish.writer`) takes them from here
reader.py  `PublishedLayer`: opens the file read-only, refuses one of another layout, and
           answers each question the dashboard, the site report and the exports ask
"""
