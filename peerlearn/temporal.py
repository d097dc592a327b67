"""One way to connect to Temporal for the API, the worker and the CLI.

Every payload is a pydantic model or dataclass, so all clients share the
pydantic data converter.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from peerlearn.settings import Settings


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        tls=settings.temporal_tls,
        api_key=settings.temporal_api_key,
    )
