"""Errors of the numerics: plain ValueErrors whose message can be shown to a user as is."""


class InvalidArgument(ValueError):
    """An argument a caller can fix: a bad mode, padding, stride, window or image shape."""


class InvalidKernel(InvalidArgument):
    """A user kernel that is not a non-empty 2-D list of finite numbers within the size limit."""
