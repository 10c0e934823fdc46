"""Codec training: presets in ``soundspring.config``, loop in ``trainer``."""
