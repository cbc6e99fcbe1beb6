"""User-facing errors: one line, naming the bad value and what is allowed, never a traceback."""


class EEBenchError(Exception):
    """A problem with the user's input or environment that the user can fix."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise EEBenchError(message)
