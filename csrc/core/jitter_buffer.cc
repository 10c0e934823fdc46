#include "core/jitter_buffer.h"

#include <cmath>
#include <string>

namespace soundspring::transport {
namespace {

// Serial-number unwrapping: the 64-bit value congruent to `value` mod 2^bits nearest to ref.
std::int64_t Unwrap32(std::uint32_t value, std::int64_t ref) {
  const auto delta = static_cast<std::int32_t>(value - static_cast<std::uint32_t>(ref));
  return ref + delta;
}

std::int64_t Unwrap16(std::uint16_t value, std::int64_t ref) {
  const auto delta = static_cast<std::int16_t>(
      static_cast<std::uint16_t>(value - static_cast<std::uint16_t>(ref)));
  return ref + delta;
}

}  // namespace

Status JitterBuffer::Create(const JitterConfig& c, std::unique_ptr<JitterBuffer>* out) {
  if (c.num_layers < 1 || c.num_layers > kMaxLayers) {
    return InvalidArgument("num_layers must be in [1, 4], got " + std::to_string(c.num_layers));
  }
  if (!(c.chunk_ms > 0.0 && c.chunk_ms <= 1000.0)) {
    return InvalidArgument("chunk_ms must be in (0, 1000]");
  }
  if (!(c.playout_delay_ms >= 0.0 && c.playout_delay_ms <= 60000.0)) {
    return InvalidArgument("playout_delay_ms must be in [0, 60000]");
  }
  if (c.window_chunks < 1 || c.window_chunks > 65536) {
    return InvalidArgument("window_chunks must be in [1, 65536], got " +
                           std::to_string(c.window_chunks));
  }
  if (c.has_anchor && !std::isfinite(c.anchor_time_ms)) {
    return InvalidArgument("anchor_time_ms must be finite");
  }
  out->reset(new JitterBuffer(c));
  return Status::Ok();
}

JitterBuffer::JitterBuffer(const JitterConfig& config)
    : config_(config), slots_(static_cast<std::size_t>(config.window_chunks)) {
  Reset();
}

void JitterBuffer::Reset() {
  for (auto& s : slots_) {
    s.chunk = -1;
    s.mask = 0;
  }
  anchored_ = config_.has_anchor;
  anchor_chunk_ = config_.anchor_chunk;
  anchor_time_ms_ = config_.anchor_time_ms;
  next_ = anchor_chunk_;
  highest_ = next_ - 1;
  seq_seen_ = false;
  max_seq_ = 0;
  stats_ = JitterStats();
}

double JitterBuffer::Deadline(std::int64_t chunk) const {
  return anchor_time_ms_ + static_cast<double>(chunk - anchor_chunk_) * config_.chunk_ms +
         config_.playout_delay_ms;
}

JitterBuffer::Slot& JitterBuffer::SlotFor(std::int64_t chunk) {
  const auto w = static_cast<std::int64_t>(slots_.size());
  Slot& s = slots_[static_cast<std::size_t>(((chunk % w) + w) % w)];
  if (s.chunk != chunk) {
    s.chunk = chunk;
    s.mask = 0;
    s.base_from_fec = false;
  }
  return s;
}

Status JitterBuffer::Push(std::uint16_t seq, std::uint32_t chunk, double arrival_ms,
                          const std::uint8_t* packet, std::size_t size, PushOutcome* outcome) {
  if (!std::isfinite(arrival_ms)) return InvalidArgument("arrival_ms must be finite");
  PacketView p;
  Status st = ParsePacket(packet, size, &p);
  if (!st.ok()) return st;
  ++stats_.pushed;

  if (!seq_seen_) {
    seq_seen_ = true;
    max_seq_ = seq;
  } else {
    const std::int64_t s = Unwrap16(seq, max_seq_);
    if (s < max_seq_) {
      ++stats_.reordered;
    } else {
      max_seq_ = s;
    }
  }
  if (p.layer >= config_.num_layers) {
    ++stats_.unused_layer;
    *outcome = PushOutcome::kUnusedLayer;
    return Status::Ok();
  }
  if (!anchored_) {
    anchored_ = true;
    anchor_chunk_ = chunk;
    anchor_time_ms_ = arrival_ms;
    next_ = anchor_chunk_;
    highest_ = next_ - 1;
  }
  const std::int64_t k = Unwrap32(chunk, next_);
  const auto window = static_cast<std::int64_t>(slots_.size());
  if (k < next_ || arrival_ms > Deadline(k)) {
    ++stats_.late;
    *outcome = PushOutcome::kLate;
    return Status::Ok();
  }
  if (k >= next_ + window) {
    ++stats_.too_early;
    *outcome = PushOutcome::kTooEarly;
    return Status::Ok();
  }
  Slot& slot = SlotFor(k);
  const std::uint32_t bit = 1u << p.layer;
  if ((slot.mask & bit) && !(p.layer == 0 && slot.base_from_fec)) {
    ++stats_.duplicates;
    *outcome = PushOutcome::kDuplicate;
  } else {
    slot.payloads[static_cast<std::size_t>(p.layer)].assign(p.payload, p.payload + p.payload_size);
    slot.mask |= bit;
    if (p.layer == 0) slot.base_from_fec = false;
    ++stats_.accepted;
    *outcome = PushOutcome::kAccepted;
  }
  if (k > highest_) highest_ = k;
  if (p.has_fec) {
    const std::int64_t j = k - p.fec_offset;
    if (j >= next_ && arrival_ms <= Deadline(j)) {
      Slot& target = SlotFor(j);
      if (!(target.mask & 1u)) {
        target.payloads[0].assign(p.fec_payload, p.fec_payload + p.fec_size);
        target.mask |= 1u;
        target.base_from_fec = true;
      }
    }
  }
  return Status::Ok();
}

void JitterBuffer::Release(std::vector<PlayoutChunk>* out) {
  Slot& s = SlotFor(next_);
  PlayoutChunk c;
  c.chunk = next_;
  c.received_mask = s.mask;
  c.base_from_fec = s.base_from_fec && (s.mask & 1u);
  for (int l = 0; l < kMaxLayers; ++l) {
    if (s.mask & (1u << l)) c.payloads[static_cast<std::size_t>(l)].swap(s.payloads[static_cast<std::size_t>(l)]);
  }
  if (c.base_from_fec) ++stats_.fec_applied;
  s.chunk = -1;
  s.mask = 0;
  s.base_from_fec = false;
  ++stats_.released;
  out->push_back(std::move(c));
  ++next_;
}

Status JitterBuffer::Pop(double now_ms, std::size_t max_chunks, std::vector<PlayoutChunk>* out) {
  if (std::isnan(now_ms)) return InvalidArgument("now_ms must not be NaN");
  if (!anchored_) return Status::Ok();
  for (std::size_t n = 0; n < max_chunks && Deadline(next_) <= now_ms; ++n) Release(out);
  if (highest_ < next_ - 1) highest_ = next_ - 1;
  return Status::Ok();
}

void JitterBuffer::Flush(std::vector<PlayoutChunk>* out) {
  if (!anchored_) return;
  while (next_ <= highest_) Release(out);
}

}  // namespace soundspring::transport
