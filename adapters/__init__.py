"""Adapters: where exchange wire formats (JSON, recordings) enter the runtime, and nowhere else."""

from arbor.adapters.decoding import DecodeError, Decoder, decoder_for

__all__ = ["DecodeError", "Decoder", "decoder_for"]
