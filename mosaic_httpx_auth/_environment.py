"""Settings from environment variables, for `MosaicAuth.from_env` and the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._exceptions import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping

# Environment variable -> MosaicAuth argument.
ENVIRONMENT_VARIABLES = {
    "MOSAIC_CLIENT_ID": "client_id",
    "MOSAIC_CLIENT_SECRET": "client_secret",
    "MOSAIC_TOKEN_URL": "token_url",
    "MOSAIC_RESOURCE": "resource",
}
REQUIRED = ("MOSAIC_CLIENT_ID", "MOSAIC_CLIENT_SECRET")


def settings_from_env(environ: Mapping[str, str], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`MosaicAuth` arguments from `environ`, with `overrides` taking precedence.

    An empty variable counts as unset. A missing required setting raises `ConfigurationError`
    naming the variable.
    """
    settings: dict[str, Any] = {
        argument: environ[variable]
        for variable, argument in ENVIRONMENT_VARIABLES.items()
        if environ.get(variable)
    }
    settings.update(overrides)
    missing = [
        variable for variable in REQUIRED if settings.get(ENVIRONMENT_VARIABLES[variable]) is None
    ]
    if missing:
        raise ConfigurationError(f"set {' and '.join(missing)} in the environment")
    return settings
