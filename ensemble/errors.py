"""The one exception the command line turns into a one-line message and exit code 1."""


class EnsError(Exception):
    """Bad input or a refused action, said in one line that names the file, row or value.

    Raised at the boundary (reading files, checking options) before anything is written.
    """
