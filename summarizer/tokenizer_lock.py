"""One lock per tokenizer object, held around every call of it that the app makes from a thread.

transformers 5's fast (Rust-backed) tokenizers are not thread-safe: each ``tokenizer(...)`` call
first sets truncation and padding on the shared Rust object (a mutable borrow), while an encode or
decode on another thread holds a shared borrow with the GIL released; the second thread then gets
``RuntimeError: Already borrowed``, or encodes with the other call's padding ("Unable to create
tensor"). See huggingface/transformers#47085 (open in 5.23). The app tokenizes from many threads
at once: every request builds its prompt while the batcher encodes, streams and decodes a batch.
"""
from __future__ import annotations

import threading
import weakref

_LOCKS: dict[int, threading.RLock] = {}
_GUARD = threading.Lock()


def tokenizer_lock(tokenizer) -> threading.RLock:
    """The re-entrant lock of this tokenizer object (made on first use, dropped with the object).

    Keyed by identity, not stored on the tokenizer, so tokenizers still pickle (``datasets``
    fingerprints functions that hold one)."""
    key = id(tokenizer)
    with _GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = threading.RLock()
            weakref.finalize(tokenizer, _LOCKS.pop, key, None)
        return lock
