"""The one exception type for mistakes a user can fix (imported everywhere, depends on nothing)."""


class ConfigError(ValueError):
    """A value or a place a user can fix; `str(err)` is the one line we print."""
