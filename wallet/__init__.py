"""Tally's wallet: keys, encrypted keystore, coin selection, signing and the ``tally-wallet``
command. It talks to a node only over the HTTP API; ``wallet`` and ``node`` never import each
other, and private keys never leave the wallet's process.

Modules, from the bottom up:

- ``amounts``: decimal TLY <-> base units, exactly (``decimal``, never floats);
- ``keys``: BIP39 mnemonics (``mnemonic``) and BIP32/BIP44 derivation (``bip32``) on
  ``m/44'/<coin type>'/0'/<0 receive, 1 change>/i``;
- ``keystore``: the wallet file, scrypt + AES-256-GCM, written atomically with mode 0600;
- ``coinselect``: pure coin selection with exact sizes and fees, change and dust rules;
- ``builder``: a selection becomes a signed ``consensus.Transaction``;
- (the node is reached through ``client.http.Client``, the SDK, typed by ``client.models``);
- ``model``: the scan's and the send's plain types, ``WalletError`` and the checks shared by
  ``service`` and the modules it calls (``spending``, ``watchonly``), which import it, not
  ``service``;
- ``service``: the wallet's operations (gap-limit scan, balance, history, send, bump-fee, wait);
- ``cli_common``: the commands' ``Context``, tables and the end of a send, shared by ``cli`` and
  the modules adding commands to it (``cli_offline``, ``cli_payments``, ``cli_spending``);
- ``cli``: argument parsing, passwords, tables and JSON, one-line errors.

No module imports one above it, not even inside a function, but for type annotations under
``if TYPE_CHECKING:`` (``tests/unit/test_import_cycles.py`` checks it).

Decisions where the spec is silent are in ``docs/DECISIONS.md`` under "Wallet".
"""
