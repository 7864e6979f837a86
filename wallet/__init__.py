"""Tally's wallet: keys, encrypted keystore, coin selection, signing and the ``tally-wallet``
command. It talks to a node only over the HTTP API; ``wallet`` and ``node`` never import each
other. (Built in a later issue; the package exists so the layout of SPEC 1 holds.)
"""
