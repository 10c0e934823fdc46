"""The transceiver: ``Transmitter`` (codec -> entropy coder -> packets) and ``Receiver``
(packets -> decoding / concealment -> codec decoder). The only package wiring every stage:
``transmitter`` (the sending end), ``receiver`` (the receiving end, on the C++ jitter
buffer: unclocked for files and simulations, clocked for live streams), ``stream`` (the
``.spring`` header schema and ``open_stream``), ``batch`` (whole signals through both ends).

Stream rules (DESIGN.md sections 5-7):

- Chunks of C frames (default 2 = 40 ms). By default one packet per chunk (layer 0)
  whose single range-coder stream holds the base levels 0-2 (static PMFs: a prefix that
  decodes on its own), then every fine level, then one integrity check. With
  ``layered=True``: one base packet and one packet per fine group present at the
  bitrate (each its own stream and check), for networks that prioritise the base.
  Sequence numbers are ``(chunk * packets_per_chunk + layer) mod 2^16``; the chunk index
  is the RTP-style timestamp. Both travel outside the packet (transport / container).
- Fine PMFs come from the model's memory: the base tokens of the chunks within the
  entropy-context reach ``context_frames``. A fine packet is decodable only when every
  chunk in that reach had its base received (or recovered by FEC); a concealed base
  "taints" the memory for the following ``context_frames // C`` chunks.
- Optional FEC: the base packet of chunk c also carries a copy of chunk c-1's base
  (its base-only payload, as a layered base packet would carry it).
- Rate-distortion token choice (transmitter only; ``rd_lambda``): the transmitter may
  pick, per token, a codeword a little farther from the residual than the nearest when
  the coder's PMF makes it much cheaper (the RDO quantisation of video encoders). The
  bitstream is unchanged: a receiver decodes whatever tokens were sent.
- A lost chunk is concealed (``config.DEFAULT_CONCEAL``, ``repeat``: the last decoded
  frame's tokens at every level it carried; ``lm``: masked-LM infilling of the base from
  the frames around the gap, using later base packets already received, decoded from the
  expected latent under the LM's PMFs, its fine levels dropped; ``lm_greedy``: the LM's
  most likely base tokens; ``blend``: ``lm``'s latent mixed with the repeated frame's;
  ``zero``). See ``soundspring.plc`` for why the default is ``repeat``.
"""

from ..config import TransceiverConfig
from ._endpoint import DEFAULT_HISTORY_CHUNKS, settle_heap
from .batch import receive, receive_blocks, transmit
from .receiver import (
    CHUNK_STATUSES,
    DEFAULT_WINDOW_CHUNKS,
    ChunkOutcome,
    DecodedChunk,
    Receiver,
    ReceiverSnapshot,
    ReceiverStats,
    TokenReceiver,
)
from .stream import SpringStream, open_stream
from .transmitter import SentPacket, TokenTransmitter, Transmitter, algorithmic_latency_ms

__all__ = [
    "CHUNK_STATUSES", "DEFAULT_HISTORY_CHUNKS", "DEFAULT_WINDOW_CHUNKS", "ChunkOutcome",
    "DecodedChunk", "Receiver", "ReceiverSnapshot", "ReceiverStats", "SentPacket",
    "SpringStream", "TokenReceiver", "TokenTransmitter", "TransceiverConfig", "Transmitter",
    "algorithmic_latency_ms", "open_stream", "receive", "receive_blocks", "settle_heap",
    "transmit",
]
