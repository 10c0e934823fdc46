#include "core/jitter_buffer.h"

#include <cmath>
#include <string>
#include <type_traits>

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

bool SameConfig(const JitterConfig& a, const JitterConfig& b) {
  return a.num_layers == b.num_layers && a.chunk_ms == b.chunk_ms &&
         a.playout_delay_ms == b.playout_delay_ms && a.window_chunks == b.window_chunks &&
         a.has_anchor == b.has_anchor && a.anchor_chunk == b.anchor_chunk &&
         a.anchor_time_ms == b.anchor_time_ms && a.clocked == b.clocked;
}

// A released or peeked chunk from its slot `s`: copies the payloads when `s` is const (Peek),
// moves them out when it is not (Release, which then clears the slot).
template <class SlotT>
void FillChunk(SlotT& s, std::int64_t chunk, PlayoutChunk* c) {
  const auto give = [](auto& from, std::vector<std::uint8_t>& to) {
    if constexpr (std::is_const_v<SlotT>) {
      to = from;
    } else {
      to.swap(from);
    }
  };
  c->chunk = chunk;
  c->received_mask = s.mask;
  c->lost_mask = s.lost;
  c->late_packets = s.late;
  c->damaged_packets = s.damaged;
  c->version = s.version;
  for (int l = 0; l < kMaxLayers; ++l) {
    const auto i = static_cast<std::size_t>(l);
    if (s.mask & (1u << l)) {
      give(s.payloads[i], c->payloads[i]);
    } else {
      c->payloads[i].clear();
    }
  }
  c->has_fec_copy = s.has_fec;
  c->base_from_fec = s.has_fec && !(s.mask & 1u);
  if (c->base_from_fec) {
    c->payloads[0] = s.fec;  // a copy: the FEC copy is also handed out on its own
    c->received_mask |= 1u;
  }
  if (s.has_fec) {
    give(s.fec, c->fec_copy);
  } else {
    c->fec_copy.clear();
  }
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

std::unique_ptr<JitterBuffer> JitterBuffer::Clone() const {
  return std::unique_ptr<JitterBuffer>(new JitterBuffer(*this));
}

Status JitterBuffer::RestoreFrom(const JitterBuffer& other) {
  if (!SameConfig(config_, other.config_)) {
    return InvalidArgument("the snapshot is of a jitter buffer with another configuration");
  }
  if (&other != this) *this = other;
  return Status::Ok();
}

void JitterBuffer::Reset() {
  for (auto& s : slots_) {
    s.chunk = -1;
    s.Clear();
  }
  anchored_ = config_.has_anchor || !config_.clocked;
  clock_set_ = config_.has_anchor && config_.clocked;
  anchor_chunk_ = config_.has_anchor ? config_.anchor_chunk : 0;
  anchor_time_ms_ = config_.has_anchor ? config_.anchor_time_ms : 0.0;
  next_ = anchor_chunk_;
  highest_ = next_ - 1;
  seq_seen_ = false;
  max_seq_ = 0;
  changes_ = 0;
  stats_ = JitterStats();
}

double JitterBuffer::Deadline(std::int64_t chunk) const {
  return anchor_time_ms_ + static_cast<double>(chunk - anchor_chunk_) * config_.chunk_ms +
         config_.playout_delay_ms;
}

std::int64_t JitterBuffer::UnwrapChunk(std::uint32_t chunk) const { return Unwrap32(chunk, next_); }

std::size_t JitterBuffer::held_chunks() const {
  std::size_t n = 0;
  for (const auto& s : slots_) n += s.chunk >= next_;
  return n;
}

JitterBuffer::Slot& JitterBuffer::SlotFor(std::int64_t chunk) {
  const auto w = static_cast<std::int64_t>(slots_.size());
  Slot& s = slots_[static_cast<std::size_t>(((chunk % w) + w) % w)];
  if (s.chunk != chunk) {
    s.chunk = chunk;
    s.Clear();
    Touch(s);
  }
  return s;
}

const JitterBuffer::Slot* JitterBuffer::Held(std::int64_t chunk) const {
  if (!anchored_ || chunk < next_) return nullptr;
  const auto w = static_cast<std::int64_t>(slots_.size());
  const Slot& s = slots_[static_cast<std::size_t>(((chunk % w) + w) % w)];
  return s.chunk == chunk ? &s : nullptr;
}

void JitterBuffer::Position(std::int64_t chunk) {
  anchored_ = true;
  anchor_chunk_ = chunk;
  next_ = chunk;
  highest_ = next_ - 1;
}

PushOutcome JitterBuffer::Admit(std::uint32_t chunk, double arrival_ms, std::int64_t* k) {
  if (!anchored_) Position(chunk);
  if (config_.clocked && !clock_set_) {
    clock_set_ = true;
    const std::int64_t first = Unwrap32(chunk, next_);
    anchor_chunk_ = first > next_ ? first : next_;
    anchor_time_ms_ = arrival_ms;
  }
  *k = Unwrap32(chunk, next_);
  const auto window = static_cast<std::int64_t>(slots_.size());
  if (*k < next_) {
    ++stats_.late;
    return PushOutcome::kLate;
  }
  if (config_.clocked && arrival_ms > Deadline(*k)) {
    ++stats_.late;
    if (*k < next_ + window) NoteLate(*k);  // still held: its outcome says "late"
    return PushOutcome::kLate;
  }
  if (*k >= next_ + window) {
    ++stats_.too_early;
    return PushOutcome::kTooEarly;
  }
  return PushOutcome::kAccepted;
}

void JitterBuffer::NoteLate(std::int64_t k) {
  Slot& s = SlotFor(k);
  ++s.late;
  Touch(s);
  if (k > highest_) highest_ = k;
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
  std::int64_t k = 0;
  *outcome = Admit(chunk, arrival_ms, &k);
  if (*outcome != PushOutcome::kAccepted) return Status::Ok();
  Slot& slot = SlotFor(k);
  const std::uint32_t bit = 1u << p.layer;
  if (slot.lost & bit) {  // declared lost by the transport: a copy that arrives is late
    ++stats_.late;
    ++slot.late;
    Touch(slot);
    *outcome = PushOutcome::kLate;
  } else if (slot.mask & bit) {
    ++stats_.duplicates;
    *outcome = PushOutcome::kDuplicate;
  } else {
    slot.payloads[static_cast<std::size_t>(p.layer)].assign(p.payload, p.payload + p.payload_size);
    slot.mask |= bit;
    Touch(slot);
    ++stats_.accepted;
  }
  if (k > highest_) highest_ = k;
  if (p.has_fec) {
    const std::int64_t j = k - p.fec_offset;
    if (j >= next_ && (!config_.clocked || arrival_ms <= Deadline(j))) {
      Slot& target = SlotFor(j);
      if (!target.has_fec) {
        target.fec.assign(p.fec_payload, p.fec_payload + p.fec_size);
        target.has_fec = true;
        Touch(target);
      }
    }
  }
  return Status::Ok();
}

Status JitterBuffer::Offer(std::uint16_t seq, std::uint32_t chunk, double arrival_ms,
                           const std::uint8_t* packet, std::size_t size, PushOutcome* outcome,
                           std::int64_t* chunk_out) {
  if (!std::isfinite(arrival_ms)) return InvalidArgument("arrival_ms must be finite");
  PacketView p;
  if (ParsePacket(packet, size, &p).ok() && p.layer < config_.num_layers) {
    Status st = Push(seq, chunk, arrival_ms, packet, size, outcome);
    if (chunk_out != nullptr) *chunk_out = UnwrapChunk(chunk);
    return st;
  }
  ++stats_.pushed;
  std::int64_t k = 0;
  *outcome = Admit(chunk, arrival_ms, &k);
  if (chunk_out != nullptr) *chunk_out = k;
  if (*outcome != PushOutcome::kAccepted) return Status::Ok();
  Slot& slot = SlotFor(k);
  ++slot.damaged;
  Touch(slot);
  if (k > highest_) highest_ = k;
  ++stats_.damaged;
  *outcome = PushOutcome::kDamaged;
  return Status::Ok();
}

bool JitterBuffer::MarkLost(std::uint16_t seq) {
  if (!anchored_) return false;
  const std::int64_t layers = config_.num_layers;
  const std::int64_t first = next_ * layers;
  const auto delta = static_cast<std::uint16_t>(seq - static_cast<std::uint16_t>(first));
  if (delta >= 0x8000) return false;  // behind the playout point: already decided
  const std::int64_t pos = first + delta;
  const std::int64_t k = pos / layers;
  const auto layer = static_cast<std::size_t>(pos % layers);
  if (k >= next_ + static_cast<std::int64_t>(slots_.size())) return false;
  Slot& slot = SlotFor(k);
  const std::uint32_t bit = 1u << layer;
  slot.lost |= bit;
  if (slot.mask & bit) {
    slot.mask &= ~bit;
    slot.payloads[layer].clear();
    ++slot.late;
  }
  Touch(slot);
  ++stats_.marked_lost;
  return true;
}

bool JitterBuffer::Peek(std::int64_t chunk, PlayoutChunk* out) const {
  const Slot* s = Held(chunk);
  if (s == nullptr) return false;
  FillChunk(*s, chunk, out);
  return true;
}

bool JitterBuffer::Version(std::int64_t chunk, std::uint64_t* version) const {
  const Slot* s = Held(chunk);
  if (s == nullptr) return false;
  *version = s->version;
  return true;
}

void JitterBuffer::Release(std::vector<PlayoutChunk>* out) {
  Slot& s = SlotFor(next_);
  PlayoutChunk c;
  FillChunk(s, next_, &c);
  if (c.base_from_fec) ++stats_.fec_applied;
  s.chunk = -1;
  s.Clear();
  ++stats_.released;
  out->push_back(std::move(c));
  ++next_;
}

Status JitterBuffer::Pop(double now_ms, std::size_t max_chunks, std::vector<PlayoutChunk>* out) {
  if (std::isnan(now_ms)) return InvalidArgument("now_ms must not be NaN");
  if (!config_.clocked) {
    return InvalidArgument("pop needs a clocked jitter buffer; release chunks with ReleaseNext");
  }
  if (!clock_set_) return Status::Ok();
  for (std::size_t n = 0; n < max_chunks && Deadline(next_) <= now_ms; ++n) Release(out);
  if (highest_ < next_ - 1) highest_ = next_ - 1;
  return Status::Ok();
}

void JitterBuffer::ReleaseNext(std::vector<PlayoutChunk>* out) {
  if (!anchored_) Position(next_);
  Release(out);
  if (highest_ < next_ - 1) highest_ = next_ - 1;
}

void JitterBuffer::Flush(std::vector<PlayoutChunk>* out) {
  if (!anchored_) return;
  while (next_ <= highest_) Release(out);
}

Status JitterBuffer::SkipTo(std::int64_t chunk) {
  if (anchored_ && chunk < next_) {
    return InvalidArgument("SkipTo: chunk " + std::to_string(chunk) +
                           " is behind the playout point " + std::to_string(next_));
  }
  if (!anchored_) {
    Position(chunk);
    return Status::Ok();
  }
  for (auto& s : slots_) {
    if (s.chunk >= 0 && s.chunk < chunk) {
      s.chunk = -1;
      s.Clear();
    }
  }
  next_ = chunk;
  if (highest_ < next_ - 1) highest_ = next_ - 1;
  return Status::Ok();
}

}  // namespace soundspring::transport
