"""The block explorer page every node serves at ``/``: static HTML, CSS and JavaScript in
``static/`` that read the node's own REST API (no build step, nothing from outside the node)."""
