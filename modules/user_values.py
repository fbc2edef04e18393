"""A value a user sent, as an error message may quote it: short, and always printable.

Messages quote the bad value so the user sees what was read; a 1 MB string or a 4000-digit number
must not come back whole (nor make the message itself fail: str() of a huge int raises)."""
from __future__ import annotations

import reprlib

SHOWN_CHARS = 60

_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxtuple, _repr.maxdict, _repr.maxset = 2, 6, 6, 4, 6
_repr.maxstring = _repr.maxlong = _repr.maxother = SHOWN_CHARS


def shown(value) -> str:
    """repr(value), cut to about SHOWN_CHARS characters; unpaired surrogates escaped."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"a number of {value.bit_length()} bits"
    try:
        text = _repr.repr(value)
    except ValueError:  # a huge int inside a list
        text = f"a {type(value).__name__}"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
