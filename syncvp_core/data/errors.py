"""`DataError`, the one error every data reader raises: in a module of its own so that torch-free code (the
synthetic format's reader and writer) can raise it without importing the clip machinery."""


class DataError(ValueError):
    """A data file is missing, corrupt or not in the expected format; the message names the file."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
