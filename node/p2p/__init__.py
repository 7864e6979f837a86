"""Peer-to-peer over HTTP: message formats (``messages``), the peer manager (``manager``: relay,
headers-first sync, discovery, misbehaviour and bans) and the ``/p2p/`` routes (``routes``)."""
