"""Tally's Python SDK: the typed client of a node's public HTTP API (SPEC 1, 3.5).

What it does: ``client.models`` holds every JSON shape the API answers or takes, as ``msgspec``
structs, with the API's shared constants (its prefix, batch and gap limits, fee targets); the node
serves and documents exactly these (``node.api`` encodes them, ``node.api.openapi`` generates the
OpenAPI document from them), and ``client.http.Client`` decodes its answers into them. So a shape
changes in one place, and the server, the document, this client and the wallet follow.
``client.events`` subscribes to a node's event stream (SPEC 3.6: ``EventStream``, async, and
``iter_events``, a generator); it is imported on its own, as it loads aiohttp.

What it does not do: hold keys or sign (``wallet``), validate consensus (``consensus``), or keep
state beyond one call. It imports ``consensus`` only of this project (a test enforces it), never
``node`` or ``wallet``.
"""

from client.http import Client, ClientError, NodeError, NodeUnreachableError

__all__ = ["Client", "ClientError", "NodeError", "NodeUnreachableError"]
