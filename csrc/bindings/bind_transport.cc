// Transport bindings: a thin mirror of csrc/core/{packet,container,channel,jitter_buffer}.h,
// registered into soundspring._core.transport. Facades live in soundspring.transport.
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bindings/common.h"
#include "core/channel.h"
#include "core/container.h"
#include "core/crc.h"
#include "core/jitter_buffer.h"
#include "core/packet.h"

namespace soundspring::bindings {
namespace {

namespace tr = soundspring::transport;

const std::uint8_t* BytesPtr(const py::buffer_info& info) {
  return static_cast<const std::uint8_t*>(info.ptr);
}

std::size_t BytesLen(const py::buffer_info& info) { return static_cast<std::size_t>(info.size); }

py::bytes ToBytes(const std::uint8_t* p, std::size_t n) {
  return py::bytes(reinterpret_cast<const char*>(p), n);
}

py::tuple ParsePacketPy(const py::handle& data) {
  py::buffer_info info = require_bytes(data, "packet");
  tr::PacketView p;
  check(tr::ParsePacket(BytesPtr(info), BytesLen(info), &p));
  py::object fec_offset = py::none(), fec = py::none();
  if (p.has_fec) {
    fec_offset = py::int_(p.fec_offset);
    fec = ToBytes(p.fec_payload, p.fec_size);
  }
  return py::make_tuple(p.layer, ToBytes(p.payload, p.payload_size), fec_offset, fec);
}

py::bytes SerializePacketPy(int layer, const py::handle& payload, py::object fec_offset,
                            py::object fec_payload) {
  py::buffer_info pay = require_bytes(payload, "payload");
  tr::PacketView p;
  p.layer = layer;
  p.payload = BytesPtr(pay);
  p.payload_size = BytesLen(pay);
  py::buffer_info fec_info;
  if (fec_offset.is_none() != fec_payload.is_none()) {
    throw py::value_error("fec_offset and fec_payload must be given together");
  }
  if (!fec_offset.is_none()) {
    fec_info = require_bytes(fec_payload, "fec_payload");
    p.has_fec = true;
    p.fec_offset = fec_offset.cast<int>();
    p.fec_payload = BytesPtr(fec_info);
    p.fec_size = BytesLen(fec_info);
  }
  std::uint8_t buf[tr::kMaxPacketBytes];
  std::size_t written = 0;
  check(tr::SerializePacket(p, buf, sizeof buf, &written));
  return ToBytes(buf, written);
}

py::bytes EncodeHeaderPy(const py::handle& json) {
  py::buffer_info info = require_bytes(json, "header_json");
  std::vector<std::uint8_t> out;
  check(tr::AppendStreamHeader(BytesPtr(info), BytesLen(info), &out));
  return ToBytes(out.data(), out.size());
}

py::bytes EncodeRecordPy(std::uint32_t seq, std::uint32_t chunk, const py::handle& packet) {
  py::buffer_info info = require_bytes(packet, "packet");
  std::vector<std::uint8_t> out;
  check(tr::AppendRecord(seq, chunk, BytesPtr(info), BytesLen(info), &out));
  return ToBytes(out.data(), out.size());
}

py::tuple ReadContainerPy(const py::handle& data) {
  py::buffer_info info = require_bytes(data, "data");
  const std::uint8_t* ptr = BytesPtr(info);
  const std::size_t size = BytesLen(info);
  tr::ContainerLayout layout;
  Status st;
  {
    py::gil_scoped_release release;
    st = tr::ReadContainer(ptr, size, &layout);
  }
  check(st);
  const auto& records = layout.records;
  const auto& damage = layout.damage;
  const auto n = static_cast<py::ssize_t>(records.size());
  py::array_t<std::uint32_t> seqs(n), chunks(n);
  py::array_t<std::int64_t> offsets(n);
  py::array_t<std::int64_t> dmg({static_cast<py::ssize_t>(damage.size()), py::ssize_t{2}});
  py::list packets(static_cast<std::size_t>(n));
  auto s = seqs.mutable_unchecked<1>();
  auto c = chunks.mutable_unchecked<1>();
  auto o = offsets.mutable_unchecked<1>();
  for (py::ssize_t i = 0; i < n; ++i) {
    const auto& r = records[static_cast<std::size_t>(i)];
    s(i) = r.seq;
    c(i) = r.chunk;
    o(i) = static_cast<std::int64_t>(r.record_offset);
    packets[static_cast<std::size_t>(i)] = ToBytes(ptr + r.packet_offset, r.packet_size);
  }
  auto d = dmg.mutable_unchecked<2>();
  for (py::ssize_t i = 0; i < static_cast<py::ssize_t>(damage.size()); ++i) {
    d(i, 0) = static_cast<std::int64_t>(damage[static_cast<std::size_t>(i)].offset);
    d(i, 1) = static_cast<std::int64_t>(damage[static_cast<std::size_t>(i)].size);
  }
  py::dict meta;
  meta["version"] = static_cast<int>(layout.version);
  meta["header_recovered"] = layout.header_recovered;
  meta["header_copy_offset"] =
      layout.header_recovered ? py::object(py::int_(layout.header_copy_offset)) : py::none();
  meta["header_error"] = layout.header_error;
  meta["header_copies"] = layout.header_copies;
  return py::make_tuple(ToBytes(ptr + layout.json_offset, layout.json_size), seqs, chunks,
                        offsets, packets, dmg, meta);
}

// Streaming writer: each call returns the bytes to append to the file.
class ContainerWriterPy {
 public:
  explicit ContainerWriterPy(const py::handle& json) {
    py::buffer_info info = require_bytes(json, "header_json");
    std::vector<std::uint8_t> out;
    check(writer_.Begin(BytesPtr(info), BytesLen(info), &out));
    head_ = ToBytes(out.data(), out.size());
  }
  py::bytes head() const { return head_; }
  bool writes_copies() const { return writer_.writes_copies(); }
  py::bytes Write(std::uint32_t seq, std::uint32_t chunk, const py::handle& packet) {
    py::buffer_info info = require_bytes(packet, "packet");
    std::vector<std::uint8_t> out;
    check(writer_.Append(seq, chunk, BytesPtr(info), BytesLen(info), &out));
    return ToBytes(out.data(), out.size());
  }
  py::bytes Finish() {
    std::vector<std::uint8_t> out;
    check(writer_.Finish(&out));
    return ToBytes(out.data(), out.size());
  }

 private:
  tr::ContainerWriter writer_;
  py::bytes head_;
};

// Vectorised draws shared by every loss model.
py::array_t<bool> Draw(tr::LossModel& model, py::ssize_t n) {
  if (n < 0) throw py::value_error("n must be >= 0, got " + std::to_string(n));
  py::array_t<bool> out(n);
  auto* ptr = reinterpret_cast<std::uint8_t*>(out.mutable_data());
  {
    py::gil_scoped_release release;
    model.Losses(ptr, static_cast<std::size_t>(n));
  }
  return out;
}

void DrawInto(tr::LossModel& model, const py::handle& out_obj) {
  auto out = require_array<bool>(out_obj, "out", 1, "bool [N]");
  if (!out.writeable()) throw py::value_error("out must be a writeable bool [N] array");
  auto* ptr = reinterpret_cast<std::uint8_t*>(out.mutable_data());
  const auto n = static_cast<std::size_t>(out.shape(0));
  py::gil_scoped_release release;
  model.Losses(ptr, n);
}

template <typename Cls, typename PyCls>
void AddDrawMethods(PyCls& cls) {
  cls.def("losses", [](Cls& m, py::ssize_t n) { return Draw(m, n); }, py::arg("n"),
          "Next n loss flags as bool [n] (True = lost).")
      .def("losses_into", [](Cls& m, const py::handle& out) { DrawInto(m, out); },
           py::arg("out"), "Fills a C-contiguous bool [N] array with the next N flags.")
      .def("reset", &Cls::Reset, "Restarts the stream from the seed (or the trace start).");
}

py::dict StatsDict(const tr::JitterStats& s) {
  py::dict d;
  d["pushed"] = s.pushed;
  d["accepted"] = s.accepted;
  d["duplicates"] = s.duplicates;
  d["late"] = s.late;
  d["too_early"] = s.too_early;
  d["unused_layer"] = s.unused_layer;
  d["reordered"] = s.reordered;
  d["fec_applied"] = s.fec_applied;
  d["released"] = s.released;
  d["damaged"] = s.damaged;
  d["marked_lost"] = s.marked_lost;
  return d;
}

// (chunk, received_mask, base_from_fec, payloads, fec_copy | None, lost_mask, late_packets,
//  damaged_packets, version)
py::tuple ChunkToTuple(const tr::PlayoutChunk& c, int num_layers) {
  py::tuple payloads(static_cast<std::size_t>(num_layers));
  for (int l = 0; l < num_layers; ++l) {
    const auto& v = c.payloads[static_cast<std::size_t>(l)];
    payloads[static_cast<std::size_t>(l)] =
        (c.received_mask & (1u << l)) ? py::object(ToBytes(v.data(), v.size())) : py::none();
  }
  py::object fec = c.has_fec_copy ? py::object(ToBytes(c.fec_copy.data(), c.fec_copy.size()))
                                  : py::none();
  return py::make_tuple(c.chunk, c.received_mask, c.base_from_fec, payloads, fec, c.lost_mask,
                        c.late_packets, c.damaged_packets, c.version);
}

py::list ChunksToList(std::vector<tr::PlayoutChunk>& chunks, int num_layers) {
  py::list out(chunks.size());
  for (std::size_t i = 0; i < chunks.size(); ++i) out[i] = ChunkToTuple(chunks[i], num_layers);
  return out;
}

}  // namespace

void bind_transport(py::module_& m) {
  m.attr("PACKET_VERSION") = tr::kPacketVersion;
  m.attr("MAX_LAYERS") = tr::kMaxLayers;
  m.attr("MAX_PACKET_BYTES") = tr::kMaxPacketBytes;
  m.attr("MAX_FEC_BYTES") = tr::kMaxFecBytes;
  m.attr("CONTAINER_VERSION") = tr::kContainerVersion;
  m.attr("MAX_HEADER_JSON_BYTES") = tr::kMaxHeaderJsonBytes;
  m.attr("RECORD_OVERHEAD_BYTES") = tr::kRecordOverheadBytes;
  m.attr("OLDEST_CONTAINER_VERSION") = tr::kOldestContainerVersion;
  m.attr("HEADER_COPY_MARKER") = tr::kHeaderCopyMarker;
  m.attr("MAX_HEADER_COPY_JSON_BYTES") = tr::kMaxHeaderCopyJsonBytes;
  m.attr("HEADER_COPY_INTERVAL") = tr::kHeaderCopyInterval;

  m.def("parse_packet", &ParsePacketPy, py::arg("packet"),
        "packet bytes -> (layer, payload, fec_offset | None, fec_payload | None).");
  m.def("serialize_packet", &SerializePacketPy, py::arg("layer"), py::arg("payload"),
        py::arg("fec_offset") = py::none(), py::arg("fec_payload") = py::none(),
        "(layer, payload[, fec_offset, fec_payload]) -> packet bytes.");
  m.def("encode_header", &EncodeHeaderPy, py::arg("header_json"),
        "JSON bytes -> .spring stream header bytes.");
  m.def("encode_record", &EncodeRecordPy, py::arg("seq"), py::arg("chunk"), py::arg("packet"),
        "(seq u32, chunk u32, packet) -> one .spring record.");
  m.def("read_container", &ReadContainerPy, py::arg("data"),
        "container bytes -> (json, seqs u32 [N], chunks u32 [N], record_offsets i64 [N], "
        "packets list[bytes], damage i64 [D, 2] (offset, size), meta dict: version, "
        "header_recovered, header_copy_offset, header_error, header_copies). Header-copy "
        "records are not among the N records.");
  m.def("encode_header_copy", [](const py::handle& json) {
          py::buffer_info info = require_bytes(json, "header_json");
          std::vector<std::uint8_t> out;
          check(tr::AppendHeaderCopy(BytesPtr(info), BytesLen(info), &out));
          return ToBytes(out.data(), out.size());
        }, py::arg("header_json"), "JSON bytes -> one header-copy record.");
  py::class_<ContainerWriterPy>(m, "ContainerWriter")
      .def(py::init<const py::handle&>(), py::arg("header_json"),
           "Starts a version-2 container; .head is the stream header plus the first copy.")
      .def_property_readonly("head", &ContainerWriterPy::head)
      .def_property_readonly("writes_copies", &ContainerWriterPy::writes_copies)
      .def("write", &ContainerWriterPy::Write, py::arg("seq"), py::arg("chunk"),
           py::arg("packet"), "One packet record (plus a header copy when one is due).")
      .def("finish", &ContainerWriterPy::Finish, "The closing header copy (maybe empty).");
  m.def("crc32", [](const py::handle& data, std::uint32_t crc) {
          py::buffer_info info = require_bytes(data, "data");
          return tr::Crc32(BytesPtr(info), BytesLen(info), crc);
        }, py::arg("data"), py::arg("crc") = 0u, "CRC-32 (zlib-compatible).");
  m.def("xoshiro256ss", [](std::uint64_t seed, py::ssize_t n) {
          if (n < 0) throw py::value_error("n must be >= 0");
          py::array_t<std::uint64_t> out(n);
          tr::Xoshiro256ss rng(seed);
          auto* p = out.mutable_data();
          for (py::ssize_t i = 0; i < n; ++i) p[i] = rng.Next();
          return out;
        }, py::arg("seed"), py::arg("n"), "First n outputs of the channel PRNG for seed.");

  auto bern = py::class_<tr::BernoulliLoss>(m, "BernoulliLoss");
  bern.def(py::init([](double loss_rate, std::uint64_t seed) {
             std::unique_ptr<tr::BernoulliLoss> out;
             check(tr::BernoulliLoss::Create(loss_rate, seed, &out));
             return out;
           }),
           py::arg("loss_rate"), py::arg("seed"));
  AddDrawMethods<tr::BernoulliLoss>(bern);

  auto ge = py::class_<tr::GilbertElliottLoss>(m, "GilbertElliottLoss");
  ge.def(py::init([](double loss_rate, double mean_burst, std::uint64_t seed) {
           std::unique_ptr<tr::GilbertElliottLoss> out;
           check(tr::GilbertElliottLoss::Create(loss_rate, mean_burst, seed, &out));
           return out;
         }),
         py::arg("loss_rate"), py::arg("mean_burst"), py::arg("seed"))
      .def_property_readonly("p_good_to_bad", &tr::GilbertElliottLoss::p_good_to_bad)
      .def_property_readonly("p_bad_to_good", &tr::GilbertElliottLoss::p_bad_to_good);
  AddDrawMethods<tr::GilbertElliottLoss>(ge);

  auto wlan = py::class_<tr::WlanMarkovLoss>(m, "WlanMarkovLoss");
  wlan.def(py::init<std::uint64_t>(), py::arg("seed"))
      .def_property_readonly_static("stationary_loss_rate",
                                    [](py::object) { return tr::WlanMarkovLoss::StationaryLossRate(); })
      .def_property_readonly_static("mean_burst",
                                    [](py::object) { return tr::WlanMarkovLoss::MeanBurst(); });
  AddDrawMethods<tr::WlanMarkovLoss>(wlan);

  auto trace = py::class_<tr::TraceLoss>(m, "TraceLoss");
  trace.def(py::init([](const py::handle& mask_obj) {
              auto mask = require_array<std::uint8_t>(mask_obj, "mask", 1, "uint8 [N] of 0/1");
              std::unique_ptr<tr::TraceLoss> out;
              check(tr::TraceLoss::Create(mask.data(), static_cast<std::size_t>(mask.shape(0)), &out));
              return out;
            }),
            py::arg("mask"))
      .def_static("parse_text", [](const py::handle& text) {
            py::buffer_info info = require_bytes(text, "text");
            std::vector<std::uint8_t> mask;
            check(tr::TraceLoss::ParseText(BytesPtr(info), BytesLen(info), &mask));
            py::array_t<std::uint8_t> out(static_cast<py::ssize_t>(mask.size()));
            if (!mask.empty()) std::memcpy(out.mutable_data(), mask.data(), mask.size());
            return out;
          }, py::arg("text"), "Trace text -> uint8 [N] mask (1 = lost).")
      .def_property_readonly("size", &tr::TraceLoss::size)
      .def_property_readonly("position", &tr::TraceLoss::position);
  AddDrawMethods<tr::TraceLoss>(trace);

  py::class_<tr::JitterBuffer>(m, "JitterBuffer")
      .def(py::init([](int num_layers, double chunk_ms, double playout_delay_ms, int window_chunks,
                       py::object anchor_chunk, py::object anchor_time_ms, bool clocked) {
             tr::JitterConfig c;
             c.clocked = clocked;
             c.num_layers = num_layers;
             c.chunk_ms = chunk_ms;
             c.playout_delay_ms = playout_delay_ms;
             c.window_chunks = window_chunks;
             if (anchor_chunk.is_none() != anchor_time_ms.is_none()) {
               throw py::value_error("anchor_chunk and anchor_time_ms must be given together");
             }
             if (!anchor_chunk.is_none()) {
               c.has_anchor = true;
               c.anchor_chunk = anchor_chunk.cast<std::uint32_t>();
               c.anchor_time_ms = anchor_time_ms.cast<double>();
             }
             std::unique_ptr<tr::JitterBuffer> out;
             check(tr::JitterBuffer::Create(c, &out));
             return out;
           }),
           py::arg("num_layers"), py::arg("chunk_ms"), py::arg("playout_delay_ms"),
           py::arg("window_chunks"), py::arg("anchor_chunk") = py::none(),
           py::arg("anchor_time_ms") = py::none(), py::arg("clocked") = true)
      .def("push",
           [](tr::JitterBuffer& jb, std::uint16_t seq, std::uint32_t chunk, double arrival_ms,
              const py::handle& packet) {
             py::buffer_info info = require_bytes(packet, "packet");
             tr::PushOutcome outcome = tr::PushOutcome::kAccepted;
             check(jb.Push(seq, chunk, arrival_ms, BytesPtr(info), BytesLen(info), &outcome));
             return static_cast<int>(outcome);
           },
           py::arg("seq"), py::arg("chunk"), py::arg("arrival_ms"), py::arg("packet"))
      .def("pop",
           [](tr::JitterBuffer& jb, double now_ms, std::size_t max_chunks) {
             std::vector<tr::PlayoutChunk> chunks;
             check(jb.Pop(now_ms, max_chunks, &chunks));
             return ChunksToList(chunks, jb.config().num_layers);
           },
           py::arg("now_ms"), py::arg("max_chunks"))
      .def("flush",
           [](tr::JitterBuffer& jb) {
             std::vector<tr::PlayoutChunk> chunks;
             jb.Flush(&chunks);
             return ChunksToList(chunks, jb.config().num_layers);
           })
      .def("offer",
           [](tr::JitterBuffer& jb, std::uint16_t seq, std::uint32_t chunk, double arrival_ms,
              const py::handle& packet) {
             py::buffer_info info = require_bytes(packet, "packet");
             tr::PushOutcome outcome = tr::PushOutcome::kAccepted;
             std::int64_t k = 0;
             check(jb.Offer(seq, chunk, arrival_ms, BytesPtr(info), BytesLen(info), &outcome, &k));
             return py::make_tuple(static_cast<int>(outcome), k);
           },
           py::arg("seq"), py::arg("chunk"), py::arg("arrival_ms"), py::arg("packet"),
           "As push, but bytes never raise: -> (outcome, unwrapped chunk).")
      .def("mark_lost", &tr::JitterBuffer::MarkLost, py::arg("seq"))
      .def("release_next",
           [](tr::JitterBuffer& jb) {
             std::vector<tr::PlayoutChunk> chunks;
             jb.ReleaseNext(&chunks);
             return ChunkToTuple(chunks.front(), jb.config().num_layers);
           })
      .def("peek",
           [](const tr::JitterBuffer& jb, std::int64_t chunk) -> py::object {
             tr::PlayoutChunk c;
             if (!jb.Peek(chunk, &c)) return py::none();
             return ChunkToTuple(c, jb.config().num_layers);
           },
           py::arg("chunk"))
      .def("peek_version",
           [](const tr::JitterBuffer& jb, std::int64_t chunk) -> py::object {
             std::uint64_t version = 0;
             if (!jb.Version(chunk, &version)) return py::none();
             return py::int_(version);
           },
           py::arg("chunk"))
      .def("skip_to", [](tr::JitterBuffer& jb, std::int64_t chunk) { check(jb.SkipTo(chunk)); },
           py::arg("chunk"))
      .def("clone", [](const tr::JitterBuffer& jb) { return jb.Clone(); })
      .def("restore",
           [](tr::JitterBuffer& jb, const tr::JitterBuffer& other) { check(jb.RestoreFrom(other)); },
           py::arg("snapshot"))
      .def("unwrap_chunk", &tr::JitterBuffer::UnwrapChunk, py::arg("chunk"))
      .def_property_readonly("held_chunks", &tr::JitterBuffer::held_chunks)
      .def_property_readonly("clock_anchored", &tr::JitterBuffer::clock_anchored)
      .def_property_readonly("clocked", [](const tr::JitterBuffer& jb) { return jb.config().clocked; })
      .def("reset", &tr::JitterBuffer::Reset)
      .def("deadline_ms", &tr::JitterBuffer::Deadline, py::arg("chunk"))
      .def_property_readonly("anchored", &tr::JitterBuffer::anchored)
      .def_property_readonly("next_chunk", &tr::JitterBuffer::next_chunk)
      .def("stats", [](const tr::JitterBuffer& jb) { return StatsDict(jb.stats()); });
}

}  // namespace soundspring::bindings
