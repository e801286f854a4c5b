"""Errors whose message is the whole story for the user."""


class UserFacingError(Exception):
    """Printed by the CLI as one line, without a traceback: bad data, bad paths, bad checkpoints."""
