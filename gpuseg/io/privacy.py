"""Pseudonymous customer ids for outputs made to be shared (``--anonymize``).

Every customer id written to a file (``segments.parquet``, ``features.parquet``,
``excluded.csv``, ``gpuseg assign``'s table, ``migrate``'s ``movers.parquet``) and shown in
the report's lookup becomes ``HMAC-SHA-256(key, id)``, the first 128 bits in hex (32
characters): the same customer gets the same pseudonym in every file and every later
``assign`` or ``migrate`` with the model, and without the key nobody can go back from a
pseudonym to the id or test a guessed id. The id is hashed as its text (an integer id
``12346`` as ``"12346"``, whatever type the file had).

The key is 32 random bytes drawn per run (:func:`new_key`). It is kept in the saved model
(``model/model.json``, ``data.privacy``) and nowhere else: the model folder is therefore the
one part of an output folder not to share. A run that saves no model (``model.reason``)
cannot give the same pseudonyms again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

import numpy as np
import pandas as pd

from ..backend import to_host

__all__ = ["SCHEME", "new_key", "pseudonyms", "pseudonymise", "key_of_model", "model_entry"]

#: What ``metrics.json`` and the report say was done.
SCHEME = "HMAC-SHA-256 of the id's text, first 128 bits in hex"
_HEX = 32


def new_key() -> bytes:
    """32 random bytes from the operating system's generator."""
    return secrets.token_bytes(32)


def _text(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def pseudonyms(ids: Any, key: bytes) -> np.ndarray:
    """The pseudonym of every id (host object array of str)."""
    values = to_host(ids)
    values = values.to_numpy() if hasattr(values, "to_numpy") else np.asarray(values)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = hmac.new(key, _text(v).encode("utf-8"), hashlib.sha256).hexdigest()[:_HEX]
    return out


def pseudonymise(frame: Any, key: bytes | None, column: str = "customer_id") -> Any:
    """A host pandas copy of ``frame`` with ``column`` replaced by pseudonyms; the frame
    itself (moved to the host) when ``key`` is None."""
    host = to_host(frame)
    host = host if isinstance(host, pd.DataFrame) else pd.DataFrame(host)
    if key is None or column not in host.columns:
        return host
    out = host.copy()
    out[column] = pseudonyms(out[column], key)
    return out


def model_entry(key: bytes) -> dict[str, str]:
    """``data.privacy`` of a saved model."""
    return {"scheme": SCHEME, "key": key.hex()}


def key_of_model(model: Any) -> bytes | None:
    """The key a saved model keeps, or None for a model of a run without ``--anonymize``."""
    entry = (getattr(model, "data", None) or {}).get("privacy")
    if not entry:
        return None
    from ..errors import DataError

    try:
        key = bytes.fromhex(str(entry["key"]))
    except (KeyError, TypeError, ValueError):
        raise DataError("model.json: data.privacy.key is not a hex key; re-run with --anonymize") from None
    if len(key) < 16:
        raise DataError("model.json: data.privacy.key is too short; re-run with --anonymize")
    return key
