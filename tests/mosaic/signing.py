"""A URL signer for the tests, shaped like the ones stores such as the Planetary Computer
need: the catalog's hrefs are not readable as they are, the signed ones are. Every call is
logged with the calling process id to the file named by ``TILEFLEET_TEST_SIGN_LOG``."""

from __future__ import annotations

import os

SUFFIX = "?unsigned"


def sign(href: str) -> str:
    with open(os.environ["TILEFLEET_TEST_SIGN_LOG"], "a") as log:
        log.write(f"{os.getpid()} {href}\n")
    return href.removesuffix(SUFFIX)
