"""Mutant names as cargo-mutants prints them: "<file>:<line>:<col>: <mutation>".

Shared by the Python steps of scripts/mutants: a mutant is matched by file and mutation, not
by its line, wherever lines may have moved since a run (tests and fixes landed), and in the
equivalents list's "<file>: <mutation>" form.
"""

import re

_LOCATION = re.compile(r"^([^:]+):\d+:\d+: ")


def unlocated(name):
    """The name without its line and column: "<file>: <mutation>"."""
    return _LOCATION.sub(r"\1: ", name, count=1)


def is_located(name):
    """Whether the name carries a line and column."""
    return _LOCATION.match(name) is not None


def anyline_pattern(name):
    """A cargo-mutants --re pattern for the same mutation of the same file on any line."""
    file, what = unlocated(name).split(": ", 1)
    return "^" + re.escape(file) + r":\d+:\d+: " + re.escape(what) + "$"
