"""The base class of errors that mean "the input or the params are wrong"."""


class UserInputError(Exception):
    """Bad params or bad data: stage mains print the message in one line, with no traceback,
    and exit with status 2. Subclasses name the file, line or key at fault."""


class FeatureError(UserInputError):
    """A feature extractor cannot run as configured (model not available, bad file)."""
