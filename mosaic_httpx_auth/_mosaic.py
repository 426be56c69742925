"""What Mosaic serves: the token endpoint's address and the resources (audiences) of its APIs."""

from __future__ import annotations

REGION_HOSTS = {
    "us": "https://api.transmitsecurity.io",
    "eu": "https://api.eu.transmitsecurity.io",
    "ca": "https://api.ca.transmitsecurity.io",
    "au": "https://api.au.transmitsecurity.io",
    "sandbox": "https://api.sbx.transmitsecurity.io",
}
"""Mosaic's API host in each region."""
DEFAULT_REGION = "us"
TOKEN_PATH = "/oidc/token"
DEFAULT_TOKEN_URL = REGION_HOSTS[DEFAULT_REGION] + TOKEN_PATH

RISK_RESOURCE = "https://risk.identity.security"
"""The resource of Detection and Response (``/risk/...``) APIs."""
VERIFY_RESOURCE = "https://verify.identity.security"
"""The resource of Identity Verification (``/verify/...``) APIs."""
IDENTITY_MANAGEMENT_AUDIENCE = "userid-api"
"""The audience of a token requested without a resource, for Identity Management (``/cis/...``)."""
