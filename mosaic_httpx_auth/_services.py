"""What Mosaic serves: the token endpoint's address and the resources (audiences) of its APIs."""

from __future__ import annotations

DEFAULT_TOKEN_URL = "https://api.transmitsecurity.io/oidc/token"

RISK_RESOURCE = "https://risk.identity.security"
"""The resource of Detection and Response (``/risk/...``) APIs."""
VERIFY_RESOURCE = "https://verify.identity.security"
"""The resource of Identity Verification (``/verify/...``) APIs."""
IDENTITY_MANAGEMENT_AUDIENCE = "userid-api"
"""The audience of a token requested without a resource, for Identity Management (``/cis/...``)."""
