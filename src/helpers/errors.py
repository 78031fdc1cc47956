"""Exception types a user can act on. The CLI prints their message without a traceback."""


class ScvError(Exception):
    """Base class: an error whose message tells the user what to fix."""


class ConfigError(ScvError):
    """A parameter file is missing, malformed or inconsistent."""


class SourceError(ScvError):
    """A source cannot be read or does not match its declaration in sources.yaml."""


class StageError(ScvError):
    """A stage notebook failed; the message names the notebook, the cell and the error."""


class AccountingError(ScvError):
    """Rows read != rows staged + rows rejected for a source: something would be lost."""
