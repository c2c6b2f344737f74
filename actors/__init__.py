"""Actors: each a runtime-free logic class plus its place in the topology."""
