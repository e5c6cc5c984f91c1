"""One family of errors that the command line turns into a message and exit code 1.

Library code raises these with a message that names the file, the place in it and
what would be accepted; only `cli.main` decides how they are shown.
"""


class CultureError(Exception):
    """A problem the user can fix; the message says how."""


class InstrumentError(CultureError):
    """An instrument file is missing, unreadable or does not follow the schema."""


class SettingsError(CultureError):
    """A setting (flag, environment variable) has a value that cannot be used."""


class StoreError(CultureError):
    """The DuckDB store cannot be opened, is locked, or is newer than this program."""


class IngestError(CultureError):
    """A whole input file cannot be ingested (unreadable, wrong shape); nothing was written."""


class ReferenceDataError(CultureError):
    """Sites, waves or headcounts given to the store are invalid."""
