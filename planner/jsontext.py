"""`json.dumps(obj, indent=2)`, the same text about twice as fast.

With `indent`, the standard library drops its C encoder for a generator per value; a
10,000-resource plan spent 0.3 s there. This writes the same text with one recursive
function appending to a list, the C string escaper and the same number reprs. Anything
it does not know (other types, non-string keys, NaN/Infinity) goes to `json.dumps`.
"""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any


class _Fallback(Exception):
    pass


def dumps_indent2(obj: Any) -> str:
    """Exactly `json.dumps(obj, indent=2)`."""
    out: list[str] = []
    app = out.append
    esc = encode_basestring_ascii

    def enc(o: Any, pad: str) -> None:
        cls = o.__class__
        if cls is str:
            app(esc(o))
        elif cls is dict:
            if not o:
                app("{}")
                return
            inner = pad + "  "
            sep = "{\n" + inner
            for k, v in o.items():
                if k.__class__ is not str:
                    raise _Fallback
                app(sep)
                app(esc(k))
                app(": ")
                enc(v, inner)
                sep = ",\n" + inner
            app("\n" + pad + "}")
        elif cls is list or cls is tuple:
            if not o:
                app("[]")
                return
            inner = pad + "  "
            sep = "[\n" + inner
            for v in o:
                app(sep)
                enc(v, inner)
                sep = ",\n" + inner
            app("\n" + pad + "]")
        elif o is None:
            app("null")
        elif o is True:
            app("true")
        elif o is False:
            app("false")
        elif cls is int:
            app(int.__repr__(o))
        elif cls is float and math.isfinite(o):
            app(float.__repr__(o))
        else:
            raise _Fallback

    try:
        enc(obj, "")
    except (_Fallback, RecursionError):
        return json.dumps(obj, indent=2)
    return "".join(out)
