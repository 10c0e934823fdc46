"""Speech data: fetch and prepare the Asterisk prompt corpus (see ``corpus``)."""

from .corpus import Clip, default_cache_dir, default_manifest, read_manifest, split_for

__all__ = ["Clip", "default_cache_dir", "default_manifest", "read_manifest", "split_for"]
