"""Errors that may travel: a token request's failure without the credentials it held.

Error trackers (sentry-sdk by default, rich's ``show_locals``) collect the local variables of
every frame an error and its causes carry, and the frames of a token request, httpx's and
httpcore's hold the secret, the Basic credential or the client assertion. What leaves the
token endpoint is a detached copy: the same types and words, redacted, without frames or any
other object (the request, its headers and body). Frames are left behind, not emptied: a
frame in an error's traceback may belong to code still running elsewhere (an error object
raised again carries its first traceback too), and emptying it would end that code.
"""

from __future__ import annotations

import itertools
import re
import sys
import traceback

if sys.version_info < (3, 11):  # pragma: no cover - the backport, a dependency there
    from exceptiongroup import BaseExceptionGroup


class DetachedError(Exception):
    """Stands for an error in a token request's failure that could not be copied faithfully:
    its message says what it was."""


def detached(
    error: BaseException, secrets: tuple[str, ...], *, with_places: bool = False
) -> BaseException:
    """A copy of `error` and of what it was raised from or during (the first member, for a
    group), each with its words redacted, its plain attributes only, and no frames. With
    `with_places`, each copy keeps where it was raised (files, lines, functions) as a note,
    for an error no one expected. It cannot fail: an error that will not be copied is
    replaced by a `DetachedError` that names it."""
    copies: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        copies.append(_copy(current, secrets, with_places=with_places))
        current = _next_in_chain(current)
    for duplicate, cause in itertools.pairwise(copies):
        duplicate.__cause__ = cause
    return copies[0]


def forget_frames(error: BaseException) -> None:
    """Leave behind, in place, the frames `error` carries and what it was raised from: for
    an error that must travel as itself (a cancellation, Ctrl+C)."""
    error.__traceback__ = None
    error.__cause__ = error.__context__ = None


def without_secrets(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with each of `secrets` in it replaced by ``[secret]``."""
    # Longest first, so that a form containing another is redacted whole; and ignoring case,
    # as a server may re-encode ``%2B`` as ``%2b``.
    forms = sorted({secret for secret in secrets if secret}, key=len, reverse=True)
    if not forms:
        return text
    pattern = "|".join(re.escape(form) for form in forms)
    return re.sub(pattern, "[secret]", text, flags=re.IGNORECASE)


def _next_in_chain(error: BaseException) -> BaseException | None:
    if isinstance(error, BaseExceptionGroup) and error.exceptions:
        return error.exceptions[0]
    # A context hidden by ``from None`` too: it may say why (a certificate refused, deep in
    # the TLS layer), which decides whether to try again.
    return error.__cause__ or error.__context__


def _copy(error: BaseException, secrets: tuple[str, ...], *, with_places: bool) -> BaseException:
    """`error` again, without its request, its secrets or its frames."""
    try:
        text = without_secrets(str(error), secrets)
    except Exception:  # a str() that fails says nothing
        text = ""
    places = (
        [without_secrets("".join(traceback.format_tb(error.__traceback__)), secrets)]
        if with_places and error.__traceback__ is not None
        else []
    )
    try:
        # Not type(error)(...): a constructor of the application's may do anything.
        duplicate = type(error).__new__(type(error))
        duplicate.args = (text,) if text else ()
        for name, value in vars(error).items():
            if isinstance(value, str):
                setattr(duplicate, name, without_secrets(value, secrets))
            elif value is None or isinstance(value, (bool, int, float)):
                setattr(duplicate, name, value)
            elif name in ("_request", "_response"):  # httpx's: its properties read them
                setattr(duplicate, name, None)
        duplicate.__notes__ = places
    except Exception:  # frozen, slotted or strange: say what it was
        duplicate = DetachedError(
            f"{type(error).__name__}: {text}" if text else type(error).__name__
        )
        duplicate.__notes__ = places
    return duplicate
