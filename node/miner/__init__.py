"""The miner: block templates and the proof-of-work search."""
