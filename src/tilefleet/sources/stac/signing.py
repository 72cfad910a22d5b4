"""URL signing: the ``sign`` hook, a ``package.module:function`` that turns an href into
one its store lets a reader open (a Planetary Computer SAS token, a pre-signed URL).

A task names the hook rather than holding it, so that it stays plain data and carries no
credentials.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from tilefleet.errors import PermanentError


class SignerError(PermanentError):
    """A ``module:function`` href signer that cannot be imported or called."""


def load_signer(spec: str | None) -> Callable[[str], str] | None:
    """The href signer named ``package.module:function`` (None for none), imported where the
    hrefs are read, so the credentials it uses stay in that process's environment."""
    if not spec:
        return None
    module_name, sep, function_name = spec.partition(":")
    if not sep or not module_name or not function_name:
        raise SignerError(f"signer {spec!r} is not of the form 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SignerError(f"signer {spec!r}: cannot import {module_name} ({exc})") from None
    signer = getattr(module, function_name, None)
    if not callable(signer):
        raise SignerError(f"signer {spec!r}: {module_name} has no function {function_name}")
    return signer
