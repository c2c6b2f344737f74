"""Supervision: OTP-style specs, restart intensity, in-group supervisors, persistence."""
