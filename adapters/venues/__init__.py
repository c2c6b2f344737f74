"""Real venues in the live cluster: market streams, the live order gateway and their wiring.

Nothing is started on import; see ``adapters.venues.wiring.start_venues``.
"""
