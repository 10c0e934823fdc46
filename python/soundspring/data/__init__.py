"""Speech data: the Asterisk prompt corpus (``corpus``, the "same speakers" held-out split;
its ``Clip`` manifests and the one fixed held-out order, ``fixed_heldout_subset``),
and Tux Paint's spoken descriptions (``tuxpaint``, whose held-out languages are the default,
speaker-disjoint evaluation set: ``speaker_disjoint_manifest``), codec tokens for SpringLM
(``tokens``) and synthetic test speech (``synth``)."""

from .corpus import Clip, default_cache_dir, default_manifest, read_manifest, split_for
from .tuxpaint import heldout_manifest as speaker_disjoint_manifest

__all__ = ["Clip", "default_cache_dir", "default_manifest", "read_manifest",
           "speaker_disjoint_manifest", "split_for"]
