"""Collector(S): stamps, decodes and sequences one symbol's venue payloads."""

from arbor.actors.collector.logic import CollectorLogic

__all__ = ["CollectorLogic"]
