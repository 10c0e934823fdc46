"""Live transport: SoundSpring packets as RTP over UDP, around the transceiver.

- ``rtp``: the datagram layouts (RFC 3550 data header with our packet inside; control
  messages as RTCP APP packets on the same port) and their strict parser.
- ``session``: the session description (the ``.spring`` stream header plus the RTP fields),
  in-band or as SDP-like text, and the end-of-stream message.
- ``sender``: ``RtpSender`` (injected loss and delay, non-blocking sends) and ``send_pcm``
  (a whole signal paced by the audio clock).
- ``receiver``: ``NetReceiver`` (socket loop, jitter-buffer playout deadline, idle timeout,
  status line, latency split into its parts).
- ``playout``: the receiver's decoding end on the playout clock.
- ``live``: ``LiveSender`` / ``LiveReceiver`` for applications (microphone-sized frames in,
  playout frames out, one worker thread per end).

The commands are ``soundspring send`` and ``soundspring receive``.
"""

from .live import FRAME_MS_CHOICES, LiveReceiver, LiveSender
from .receiver import NetReceiver, NetStats, latency_line
from .rtp import ControlMessage, RtpPacket, pack_control, pack_rtp, parse_datagram
from .sender import RtpSender, SenderStats, open_udp, parse_address, send_pcm
from .session import EndOfStream, SessionDescription, from_sdp, make_session, to_sdp

__all__ = [
    "FRAME_MS_CHOICES", "ControlMessage", "EndOfStream", "LiveReceiver", "LiveSender",
    "NetReceiver", "NetStats", "RtpPacket", "RtpSender", "SenderStats", "SessionDescription",
    "from_sdp", "latency_line", "make_session", "open_udp", "pack_control", "pack_rtp",
    "parse_address", "parse_datagram", "send_pcm", "to_sdp",
]
