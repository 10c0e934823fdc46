"""Neural models: the codec (causal SEANet encoder, EMA residual VQ, Vocos-style decoder),
SpringLM, and every weights or checkpoint file of theirs (``weights_io``)."""

from .codec import Codec, DecoderState, EncoderState
from .weights_io import load_codec, save_codec_weights

__all__ = ["Codec", "DecoderState", "EncoderState", "load_codec", "save_codec_weights"]
