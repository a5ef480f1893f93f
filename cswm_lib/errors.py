"""The library's one error type, on the ground floor: every module imports it from here (the
package re-exports it as :class:`cswm_lib.CswmError`), so no module needs the package's
``__init__`` to raise it."""


class CswmError(Exception):
    """An error caused by bad input (a path, a file, a flag).

    Command-line entry points catch it and print its message as a single line, so a user sees
    what is wrong without a traceback.
    """
