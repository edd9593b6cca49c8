"""The one exception type a user can cause; entry points print it as a single line."""


class SrlabError(Exception):
    """A problem with the user's input (a file, a parameter, the environment), not a bug."""
