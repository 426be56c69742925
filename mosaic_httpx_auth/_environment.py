"""Settings from environment variables, for `MosaicAuth.from_env` and the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ._client_certificate import (
    CERTIFICATE_FILE,
    CERTIFICATE_PAIR,
    KEY_FILE,
    load_client_certificate,
)
from ._exceptions import ConfigurationError
from ._urls import off_region

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import ModuleType

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
CLIENT_CERTIFICATE_FILE = "MOSAIC_CLIENT_CERTIFICATE_FILE"
CLIENT_KEY_FILE = "MOSAIC_CLIENT_KEY_FILE"
# What the variables of a client certificate become: an SSL context presenting it.
_CERTIFICATE_VARIABLES = f"{CLIENT_CERTIFICATE_FILE} and {CLIENT_KEY_FILE}"
_VARIABLE_OF_FILE = {
    CERTIFICATE_FILE: CLIENT_CERTIFICATE_FILE,
    KEY_FILE: CLIENT_KEY_FILE,
    CERTIFICATE_PAIR: _CERTIFICATE_VARIABLES,
}
# Where to set an argument that is missing: what an error about it should point to.
_VARIABLE_FOR = {argument: variable for variable, argument in ENVIRONMENT_VARIABLES.items()}
_VARIABLE_FOR["private_key"] = f"MOSAIC_PRIVATE_KEY or {PRIVATE_KEY_FILE}"
_VARIABLE_FOR["ssl_context"] = _CERTIFICATE_VARIABLES


class EnvironmentSettings:
    """`MosaicAuth` arguments read from the environment, and where each came from."""

    def __init__(
        self, environ: Mapping[str, str], overrides: Mapping[str, Any], *, http: ModuleType = httpx
    ) -> None:
        """Read `environ`; `overrides` take precedence. An empty variable counts as unset.
        A client certificate's context is made for `http`'s clients."""
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
        certificate = _certificate_files(environ)
        for argument in overrides:
            self.sources.pop(argument, None)
        self.arguments.update(overrides)
        if certificate is not None and "ssl_context" not in overrides:
            self._present_certificate(http, *certificate)
        if not self.arguments.get("client_id"):
            raise ConfigurationError("set MOSAIC_CLIENT_ID in the environment", setting="client_id")
        self._refuse_off_region()
        if self.arguments.get("client_secret") and self.arguments.get("private_key"):
            raise ConfigurationError(
                f"set {self._origin('client_secret')} or {self._origin('private_key')}, not "
                "both: an app authenticates with a secret or with a key",
                setting="private_key",
            )

    def _present_certificate(self, http: ModuleType, certificate_file: str, key_file: str) -> None:
        """Token requests present the client certificate: without a secret, a private key or
        MOSAIC_CLIENT_AUTH, that is how the app authenticates (``tls_client_auth``)."""
        try:
            context = load_client_certificate(http, certificate_file, key_file)
        except ConfigurationError as error:
            variable = _VARIABLE_OF_FILE[error.setting or CERTIFICATE_PAIR]
            raise ConfigurationError(f"check {variable}: {error}", setting="ssl_context") from None
        self.arguments["ssl_context"] = context
        self.sources["ssl_context"] = _CERTIFICATE_VARIABLES
        arguments = self.arguments
        if not any(arguments.get(name) for name in ("client_auth", "client_secret", "private_key")):
            arguments["client_auth"] = "tls_client_auth"
            self.sources["client_auth"] = _CERTIFICATE_VARIABLES

    def _refuse_off_region(self) -> None:
        """A region and a URL on another host contradict each other: name both variables."""
        arguments = self.arguments
        conflict = off_region(
            arguments.get("region"),
            base_url=arguments.get("base_url"),
            token_url=arguments.get("token_url"),
        )
        if conflict is not None:
            name, _ = conflict
            raise ConfigurationError(
                f"{self._origin('region')} and {self._origin(name)} name two hosts: set one of "
                "them",
                setting=name,
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


def _certificate_files(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The files of a client certificate and its key, if the environment names them: both,
    or neither."""
    certificate_file, key_file = environ.get(CLIENT_CERTIFICATE_FILE), environ.get(CLIENT_KEY_FILE)
    if certificate_file and key_file:
        return certificate_file, key_file
    if certificate_file:
        raise ConfigurationError(
            f"set {CLIENT_KEY_FILE} too: {CLIENT_CERTIFICATE_FILE} needs its private key",
            setting="ssl_context",
        )
    if key_file:
        raise ConfigurationError(
            f"set {CLIENT_CERTIFICATE_FILE} too: {CLIENT_KEY_FILE} is the key of a client "
            "certificate",
            setting="ssl_context",
        )
    return None


def _read_key_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"{PRIVATE_KEY_FILE}: cannot read {path!r} ({exc.strerror})", setting="private_key"
        ) from None
