"""Search of a STAC API (``/search`` through pystac-client), and the retry policy shared by
every HTTP read of STAC documents: 429 and 5xx are retried with backoff and jitter,
waiting what ``Retry-After`` says (within a bound), and failures become one-line reasons.
"""

from __future__ import annotations

import re
import warnings
from http import HTTPStatus
from typing import Any

import pystac
from shapely.geometry import mapping

from tilefleet.sources.stac.query import StacQuery, StacSearchError, matches

RETRY_STATUS = (429, 500, 502, 503, 504)
RETRY_AFTER_MAX_S = 300  # a server may not park a search for hours with a huge Retry-After

#: The part of a connection error's text that says why (urllib3 wraps it in a long repr).
OS_ERROR = re.compile(r"\[Errno -?\d+\] [^'\")]+|Name or service not known|timed out")


def retry_policy(retries: int, backoff_s: float):
    """The urllib3 ``Retry`` of every STAC request: ``retries`` tries on throttling and
    server errors, ``Retry-After`` honoured up to :data:`RETRY_AFTER_MAX_S`."""
    from urllib3 import Retry

    return Retry(
        total=retries,
        status_forcelist=RETRY_STATUS,
        allowed_methods=None,  # a search POST is idempotent: retry it like a GET
        backoff_factor=backoff_s,
        backoff_jitter=backoff_s / 4,
        respect_retry_after_header=True,
        retry_after_max=RETRY_AFTER_MAX_S,
        raise_on_status=False,  # hand back the last answer, so its status can be reported
    )


def search_api(
    url: str, query: StacQuery, retries: int, timeout_s: float, backoff_s: float
) -> list[pystac.Item]:
    """The items of the STAC API at ``url`` that match ``query``, asset hrefs absolute."""
    from pystac_client import Client, ConformanceClasses
    from pystac_client.exceptions import APIError
    from pystac_client.stac_api_io import StacApiIO
    from pystac_client.warnings import NoConformsTo

    io = StacApiIO(timeout=timeout_s, max_retries=retry_policy(retries, backoff_s))
    try:
        with warnings.catch_warnings():  # a root without conformance fails just below instead
            warnings.simplefilter("ignore", NoConformsTo)
            client = Client.open(url, stac_io=io, timeout=timeout_s)
        if not client.conforms_to(ConformanceClasses.ITEM_SEARCH):
            raise StacSearchError(f"STAC API {url}: offers no item search (/search)")
        options: dict[str, Any] = {}
        server_filters_cloud = True
        if query.max_cloud_cover is not None:
            if client.conforms_to(ConformanceClasses.QUERY):
                options["query"] = {"eo:cloud_cover": {"lte": query.max_cloud_cover}}
            elif client.conforms_to(ConformanceClasses.FILTER):
                options["filter_lang"] = "cql2-json"
                options["filter"] = {
                    "op": "<=",
                    "args": [{"property": "eo:cloud_cover"}, query.max_cloud_cover],
                }
            else:
                server_filters_cloud = False
        # `max_items` means the earliest items everywhere, so the server may cap the results
        # only when it sorts them and applies every filter; otherwise all are fetched and
        # capped here, which keeps the same job picking the same items on every run.
        server_caps = server_filters_cloud and client.conforms_to(ConformanceClasses.SORT)
        if server_caps:
            options["sortby"] = "+properties.datetime,+id"
        search = client.search(
            intersects=mapping(query.geometry),
            datetime=query.datetime_range,
            collections=list(query.collections) or None,
            max_items=query.max_items if server_caps else None,
            **options,
        )
        items = list(search.items())
    except APIError as exc:
        raise StacSearchError(_api_failure(url, exc, retries)) from None
    except (pystac.STACError, ValueError, KeyError) as exc:  # HTML, JSON of another kind…
        raise StacSearchError(f"STAC API {url}: not a STAC API ({brief(exc)})") from None
    for item in items:  # a relative asset href is relative to the item's own URL
        for asset in item.assets.values():
            asset.href = asset.get_absolute_href() or asset.href
    # Servers differ in edge cases (naive end dates, bbox-only footprints): hold every
    # result to the same rules as a static catalog.
    return [item for item in items if matches(item, query)]


def _api_failure(url: str, exc: Exception, retries: int) -> str:
    status = getattr(exc, "status_code", None)
    if status is None:
        reason = OS_ERROR.search(str(exc))
        if reason:
            return f"STAC API {url}: unreachable ({reason.group(0)})"
        return f"STAC API {url}: not a STAC API ({brief(exc)})"
    try:
        phrase = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        phrase = str(status)
    if status in RETRY_STATUS:
        return f"STAC API {url}: HTTP {phrase} after {retries} retries"
    return f"STAC API {url}: HTTP {phrase}: {brief(exc)}"


def brief(exc: Exception, limit: int = 200) -> str:
    """An error's text on one bounded line (a server's error body can be a whole page)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
