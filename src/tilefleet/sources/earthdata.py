"""NASA Earthdata temporary S3 credentials: obtained once by the driver and shared.

NSIDC's protected bucket (``s3://nsidc-cumulus-prod-protected``) is read in ``us-west-2``
with credentials that its ``s3credentials`` endpoint hands out for about an hour to an
Earthdata Login user. The driver asks once, with the user's EDL token (``EARTHDATA_TOKEN``
in its environment, never in the job file), and the engine shares the answer with every
worker (:mod:`tilefleet.secrets`), asking again before it expires.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime

import requests

from tilefleet.errors import JobError
from tilefleet.secrets import Secret

NSIDC_S3_CREDENTIALS = "https://data.nsidc.earthdatacloud.nasa.gov/s3credentials"
TOKEN_VARIABLE = "EARTHDATA_TOKEN"
SECRET_NAME = "earthdata-s3"
TIMEOUT_S = (10, 30)  # connect, read


@dataclass(frozen=True)
class EarthdataS3Credentials:
    """The :class:`~tilefleet.secrets.SecretSource` of an ``s3credentials`` endpoint."""

    url: str = NSIDC_S3_CREDENTIALS
    name: str = SECRET_NAME

    def fetch(self) -> Secret:
        token = os.environ.get(TOKEN_VARIABLE)
        if not token:
            raise JobError(
                f"Earthdata S3 credentials from {self.url} need an Earthdata Login token in "
                f"{TOKEN_VARIABLE} (urs.earthdata.nasa.gov → Generate Token)"
            )
        try:
            response = requests.get(
                self.url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_S
            )
        except requests.RequestException as exc:
            raise JobError(f"Earthdata S3 credentials: cannot reach {self.url}: {exc}") from None
        if response.status_code in (401, 403):
            raise JobError(
                f"Earthdata S3 credentials: {self.url} refused the token in {TOKEN_VARIABLE} "
                f"(HTTP {response.status_code}): expired, or the NSIDC application not approved"
            )
        if not response.ok:
            raise JobError(f"Earthdata S3 credentials: HTTP {response.status_code} from {self.url}")
        try:
            answer = response.json()
            values = {
                "aws_access_key_id": answer["accessKeyId"],
                "aws_secret_access_key": answer["secretAccessKey"],
                "aws_session_token": answer["sessionToken"],
            }
            expires = datetime.fromisoformat(answer["expiration"]).timestamp()
        except (ValueError, KeyError, TypeError, json.JSONDecodeError):
            raise JobError(
                f"Earthdata S3 credentials: {self.url} did not answer accessKeyId, "
                "secretAccessKey, sessionToken and expiration"
            ) from None
        return Secret(values, expires)
