"""Neural codec models: causal SEANet encoder, EMA residual VQ, Vocos-style decoder."""

from .codec import Codec, DecoderState, EncoderState, load_codec, save_weights

__all__ = ["Codec", "DecoderState", "EncoderState", "load_codec", "save_weights"]
