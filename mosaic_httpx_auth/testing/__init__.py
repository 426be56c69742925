"""An in-process emulation of Mosaic's token service, for testing code that calls Mosaic.

`MosaicEmulator` issues real RS256 tokens to the clients registered with it, checks them on
``/risk/``, ``/verify/`` and ``/cis/`` API paths, and can be told to fail, delay or drop token
requests::

    emulator = MosaicEmulator()
    client = emulator.register_client(resources=["https://risk.identity.security"])
    auth = emulator.auth(client, resource="https://risk.identity.security")
    async with httpx.AsyncClient(auth=auth, transport=emulator.transport()) as http:
        await http.post("https://api.transmitsecurity.io/risk/v1/action/result")

Serving it on a port (`MosaicEmulator.serve`) needs the ``emulator`` extra (uvicorn).
"""

from __future__ import annotations

from ._emulator import MosaicEmulator, RegisteredClient

__all__ = ["MosaicEmulator", "RegisteredClient"]
