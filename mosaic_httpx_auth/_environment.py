"""Settings from environment variables, for `MosaicAuth.from_env` and the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._exceptions import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping

# Environment variable -> MosaicAuth argument.
ENVIRONMENT_VARIABLES = {
    "MOSAIC_CLIENT_ID": "client_id",
    "MOSAIC_CLIENT_SECRET": "client_secret",
    "MOSAIC_CLIENT_AUTH": "client_auth",
    "MOSAIC_PRIVATE_KEY": "private_key",
    "MOSAIC_KEY_ID": "key_id",
    "MOSAIC_SIGNING_ALGORITHM": "signing_algorithm",
    "MOSAIC_REGION": "region",
    "MOSAIC_BASE_URL": "base_url",
    "MOSAIC_TOKEN_URL": "token_url",
    "MOSAIC_RESOURCE": "resource",
}
PRIVATE_KEY_FILE = "MOSAIC_PRIVATE_KEY_FILE"
# Where to set an argument that is missing: what an error about it should point to.
_VARIABLE_FOR = {argument: variable for variable, argument in ENVIRONMENT_VARIABLES.items()}
_VARIABLE_FOR["private_key"] = f"MOSAIC_PRIVATE_KEY or {PRIVATE_KEY_FILE}"


class EnvironmentSettings:
    """`MosaicAuth` arguments read from the environment, and where each came from."""

    def __init__(self, environ: Mapping[str, str], overrides: Mapping[str, Any]) -> None:
        """Read `environ`; `overrides` take precedence. An empty variable counts as unset."""
        self.sources: dict[str, str] = {}
        self.arguments: dict[str, Any] = {}
        for variable, argument in ENVIRONMENT_VARIABLES.items():
            if environ.get(variable):
                self.arguments[argument] = environ[variable]
                self.sources[argument] = variable
        if environ.get(PRIVATE_KEY_FILE):
            if "private_key" in self.arguments:
                raise ConfigurationError(
                    f"set MOSAIC_PRIVATE_KEY or {PRIVATE_KEY_FILE}, not both",
                    setting="private_key",
                )
            self.arguments["private_key"] = _read_key_file(environ[PRIVATE_KEY_FILE])
            self.sources["private_key"] = PRIVATE_KEY_FILE
        for argument in overrides:
            self.sources.pop(argument, None)
        self.arguments.update(overrides)
        if not self.arguments.get("client_id"):
            raise ConfigurationError("set MOSAIC_CLIENT_ID in the environment", setting="client_id")
        if self.arguments.get("client_secret") and self.arguments.get("private_key"):
            raise ConfigurationError(
                f"set {self._origin('client_secret')} or {self._origin('private_key')}, not "
                "both: an app authenticates with a secret or with a key",
                setting="private_key",
            )

    def _origin(self, argument: str) -> str:
        return self.sources.get(argument, f"the {argument} argument")

    def explain(self, error: ConfigurationError) -> ConfigurationError:
        """`error` from `MosaicAuth(**arguments)`, reworded to name the variable to fix."""
        variable = self.sources.get(error.setting or "")
        if variable is None and error.setting not in self.arguments:
            variable = _VARIABLE_FOR.get(error.setting or "")
        if variable is None:
            return error
        verb = "check" if error.setting in self.arguments else "set"
        return ConfigurationError(f"{verb} {variable}: {error}", setting=error.setting)


def _read_key_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"{PRIVATE_KEY_FILE}: cannot read {path!r} ({exc.strerror})", setting="private_key"
        ) from None
