"""The one exception type that means "the user's input is wrong": the CLI prints it as one line."""


class UsageError(Exception):
    """Bad input (a name, a number, a path, a data file); exits with status 2, no traceback."""
