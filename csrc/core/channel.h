// Seeded packet-loss models (normative description of the random stream: docs/bitstream.md,
// "Channel models"). Every model draws from Xoshiro256ss seeded through SplitMix64, and
// compares doubles u = (x >> 11) * 2^-53 in [0, 1) against probabilities with `u < p`, so a
// (model, parameters, seed) triple yields the same loss mask on every platform.
//
// Losses(out, n) writes n bytes, 1 = lost, 0 = received; successive calls continue one
// stream; Reset() restarts it from the seed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"

namespace soundspring::transport {

/// SplitMix64 step: advances `*state` by the golden gamma and returns the mixed value.
std::uint64_t SplitMix64(std::uint64_t* state);

/// xoshiro256** 1.0 (Blackman & Vigna). The 256-bit state is four successive SplitMix64
/// outputs of `seed` (any u64; the all-zero state cannot occur).
class Xoshiro256ss {
 public:
  explicit Xoshiro256ss(std::uint64_t seed);
  std::uint64_t Next();
  /// Uniform double in [0, 1): (Next() >> 11) * 2^-53, exact.
  double NextDouble() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  std::uint64_t s_[4];
};

/// Interface of every loss model.
class LossModel {
 public:
  virtual ~LossModel() = default;
  /// Writes n loss flags (1 = lost) to out[0, n). Preconditions: out writable for n bytes.
  virtual void Losses(std::uint8_t* out, std::size_t n) = 0;
  /// Restarts the stream: the next Losses() repeats the first one after construction.
  virtual void Reset() = 0;
};

/// Independent losses: packet i is lost iff u_i < loss_rate.
class BernoulliLoss final : public LossModel {
 public:
  /// loss_rate in [0, 1]; seed any u64. Errors: InvalidArgument when loss_rate is outside
  /// [0, 1] or not finite.
  static Status Create(double loss_rate, std::uint64_t seed, std::unique_ptr<BernoulliLoss>* out);
  void Losses(std::uint8_t* out, std::size_t n) override;
  void Reset() override { rng_ = Xoshiro256ss(seed_); }

 private:
  BernoulliLoss(double p, std::uint64_t seed) : p_(p), seed_(seed), rng_(seed) {}
  double p_;
  std::uint64_t seed_;
  Xoshiro256ss rng_;
};

/// Two-state Gilbert-Elliott model (good = received, bad = lost), parametrised by its
/// stationary loss rate L and mean burst length B: P(bad -> good) = r = 1 / B and
/// P(good -> bad) = p = L / ((1 - L) B), so the stationary loss rate is p / (p + r) = L and
/// loss runs are geometric with mean B. The first draw picks the initial state from the
/// stationary distribution (bad iff u < L); then for each packet: emit (state == bad), draw
/// u, and move (bad -> good iff u < r; good -> bad iff u < p).
class GilbertElliottLoss final : public LossModel {
 public:
  /// loss_rate in [0, 1); mean_burst >= 1 (finite); p = L / ((1 - L) B) must be <= 1.
  /// Errors: InvalidArgument naming the violated constraint.
  static Status Create(double loss_rate, double mean_burst, std::uint64_t seed,
                       std::unique_ptr<GilbertElliottLoss>* out);
  void Losses(std::uint8_t* out, std::size_t n) override;
  void Reset() override;
  double p_good_to_bad() const { return p_; }
  double p_bad_to_good() const { return r_; }

 private:
  GilbertElliottLoss(double loss_rate, double p, double r, std::uint64_t seed);
  double loss_rate_, p_, r_;
  std::uint64_t seed_;
  Xoshiro256ss rng_;
  bool bad_ = false;
};

/// The 3-state WLAN model of Milner & James: state 1 = long loss-free run, 2 = loss,
/// 3 = short gap between losses. Transitions (rows sum to 1):
///   1 -> 1 Q = 0.9363, 1 -> 2 1 - Q
///   2 -> 1 p = 0.3631, 2 -> 2 q = 0.4072, 2 -> 3 1 - p - q
///   3 -> 3 Q' = 0.5662, 3 -> 2 1 - Q'
/// Stationary distribution: pi1 = pi2 p / (1 - Q), pi3 = pi2 (1 - p - q) / (1 - Q'), so
/// pi2 = 1 / (1 + p / (1 - Q) + (1 - p - q) / (1 - Q')) = 0.138318... (the loss rate) and
/// the mean loss burst is 1 / (1 - q) = 1.6869... The initial state is drawn from the
/// stationary distribution (u < pi1 -> 1, u < pi1 + pi2 -> 2, else 3); then for each
/// packet: emit (state == 2), draw u, move by the cumulative row in the order 1, 2, 3.
class WlanMarkovLoss final : public LossModel {
 public:
  static constexpr double kQ = 0.9363;
  static constexpr double kP = 0.3631;
  static constexpr double kq = 0.4072;
  static constexpr double kQprime = 0.5662;
  explicit WlanMarkovLoss(std::uint64_t seed);
  void Losses(std::uint8_t* out, std::size_t n) override;
  void Reset() override;
  /// Analytic stationary loss rate pi2 (see the class comment).
  static double StationaryLossRate();
  /// Analytic mean length of a loss run, 1 / (1 - q).
  static double MeanBurst() { return 1.0 / (1.0 - kq); }

 private:
  std::uint64_t seed_;
  Xoshiro256ss rng_;
  int state_ = 0;  // 0, 1, 2 for states 1, 2, 3
};

/// Replays a recorded loss trace (1 = lost); past its end it wraps around to the start.
class TraceLoss final : public LossModel {
 public:
  /// mask: n >= 1 entries, each 0 or 1. Errors: InvalidArgument otherwise.
  static Status Create(const std::uint8_t* mask, std::size_t n, std::unique_ptr<TraceLoss>* out);
  /// Parses trace text: lines separated by '\n' (a trailing '\r' is ignored); after
  /// stripping spaces and tabs a line is empty (skipped), starts with '#' (a comment,
  /// skipped), or is exactly "0" or "1". Errors: InvalidArgument naming the first bad line
  /// (1-based), or when the trace holds no entry.
  static Status ParseText(const std::uint8_t* text, std::size_t size,
                          std::vector<std::uint8_t>* mask);
  void Losses(std::uint8_t* out, std::size_t n) override;
  void Reset() override { pos_ = 0; }
  std::size_t size() const { return mask_.size(); }
  std::size_t position() const { return pos_; }

 private:
  explicit TraceLoss(std::vector<std::uint8_t> mask) : mask_(std::move(mask)) {}
  std::vector<std::uint8_t> mask_;
  std::size_t pos_ = 0;
};

}  // namespace soundspring::transport
