"""Offline analysis: recordings and journals turned into evidence (cascade labels, waves, hypothesis tests).

``arbor.analysis.bursts`` is shared with the runtime: the Feature actor's liquidation-burst
feature (``liq_count``, ``liq_notional``) is computed by the same ``BurstWindow`` the offline
wave detector uses, so what research finds is what the runtime sees. See docs/analysis.md.
"""
