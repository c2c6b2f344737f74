"""Cluster assembly: build actors from settings, observers, logging and the start-cluster command."""
