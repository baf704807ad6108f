"""The one exception type for user mistakes: a one-line message, exit code 2 from the CLI."""


class AdaptkitError(Exception):
    """A user mistake (bad spec, recipe, data or argument), reported as one line.

    The message names the file, line or key at fault. The CLI prints it and exits with 2;
    anything else that escapes is a bug and keeps its traceback.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split("\n")))
