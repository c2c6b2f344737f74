"""Checks a ``/metrics`` text against the one metric schema of its run mode."""

from __future__ import annotations

from typing import Any

from arbor.adapters.operator.metric_schema import METRICS, in_mode
from prometheus_client.parser import text_string_to_metric_families


def families_by_schema(text: str, mode: str, *, optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The families of ``text``, after checking that they are exactly the schema's for ``mode`` (less
    ``optional`` ones absent), each of the schema's type, and every sample with the schema's label names."""
    # prometheus_client also writes each counter's and histogram's creation time as a ``_created`` gauge.
    families = {f.name: f for f in text_string_to_metric_families(text) if not f.name.endswith("_created")}
    expected = {s.family: s for s in in_mode(mode)}
    unknown = set(families) - set(expected)
    assert not unknown, f"/metrics serves families the {mode} schema does not have: {sorted(unknown)}"
    missing = set(expected) - set(families) - {METRICS[n].family for n in optional}
    assert not missing, f"/metrics lacks families of the {mode} schema: {sorted(missing)}"
    for name, fam in families.items():
        spec = expected[name]
        assert fam.type == spec.kind, f"{name}: a {fam.type}, the schema says {spec.kind}"
        for sample in fam.samples:
            allowed = set(spec.labels) | ({"le"} if sample.name.endswith("_bucket") else set())  # a bucket's bound
            assert set(sample.labels) == allowed, f"{sample.name}: labels {sorted(sample.labels)}, schema {spec.labels}"
    return families
