#include "core/channel.h"

#include <cmath>
#include <cstdio>
#include <string>
#include <utility>

namespace soundspring::transport {
namespace {

std::uint64_t Rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

std::string Num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

std::uint64_t SplitMix64(std::uint64_t* state) {
  std::uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

Xoshiro256ss::Xoshiro256ss(std::uint64_t seed) {
  std::uint64_t sm = seed;
  for (auto& s : s_) s = SplitMix64(&sm);
}

std::uint64_t Xoshiro256ss::Next() {
  const std::uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

// ---- Bernoulli ----

Status BernoulliLoss::Create(double loss_rate, std::uint64_t seed,
                             std::unique_ptr<BernoulliLoss>* out) {
  if (!(loss_rate >= 0.0 && loss_rate <= 1.0)) {
    return InvalidArgument("loss_rate must be in [0, 1], got " + Num(loss_rate));
  }
  out->reset(new BernoulliLoss(loss_rate, seed));
  return Status::Ok();
}

void BernoulliLoss::Losses(std::uint8_t* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = rng_.NextDouble() < p_ ? 1 : 0;
}

// ---- Gilbert-Elliott ----

Status GilbertElliottLoss::Create(double loss_rate, double mean_burst, std::uint64_t seed,
                                  std::unique_ptr<GilbertElliottLoss>* out) {
  if (!(loss_rate >= 0.0 && loss_rate < 1.0)) {
    return InvalidArgument("loss_rate must be in [0, 1) for Gilbert-Elliott, got " +
                           Num(loss_rate));
  }
  if (!(mean_burst >= 1.0) || !std::isfinite(mean_burst)) {
    return InvalidArgument("mean_burst must be a finite number >= 1 (a loss burst holds at "
                           "least one packet), got " + Num(mean_burst));
  }
  const double r = 1.0 / mean_burst;
  const double p = loss_rate / ((1.0 - loss_rate) * mean_burst);
  if (p > 1.0) {
    return InvalidArgument(
        "infeasible Gilbert-Elliott parameters: loss_rate " + Num(loss_rate) +
        " with mean_burst " + Num(mean_burst) + " needs P(good->bad) = loss_rate / ((1 - "
        "loss_rate) * mean_burst) = " + Num(p) + " > 1; raise mean_burst to at least " +
        Num(loss_rate / (1.0 - loss_rate)));
  }
  out->reset(new GilbertElliottLoss(loss_rate, p, r, seed));
  return Status::Ok();
}

GilbertElliottLoss::GilbertElliottLoss(double loss_rate, double p, double r, std::uint64_t seed)
    : loss_rate_(loss_rate), p_(p), r_(r), seed_(seed), rng_(seed) {
  Reset();
}

void GilbertElliottLoss::Reset() {
  rng_ = Xoshiro256ss(seed_);
  bad_ = rng_.NextDouble() < loss_rate_;
}

void GilbertElliottLoss::Losses(std::uint8_t* out, std::size_t n) {
  bool bad = bad_;
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = bad ? 1 : 0;
    const double u = rng_.NextDouble();
    bad = bad ? !(u < r_) : (u < p_);
  }
  bad_ = bad;
}

// ---- WLAN 3-state Markov ----

double WlanMarkovLoss::StationaryLossRate() {
  return 1.0 / (1.0 + kP / (1.0 - kQ) + (1.0 - kP - kq) / (1.0 - kQprime));
}

WlanMarkovLoss::WlanMarkovLoss(std::uint64_t seed) : seed_(seed), rng_(seed) { Reset(); }

void WlanMarkovLoss::Reset() {
  rng_ = Xoshiro256ss(seed_);
  const double pi2 = StationaryLossRate();
  const double pi1 = pi2 * kP / (1.0 - kQ);
  const double u = rng_.NextDouble();
  state_ = u < pi1 ? 0 : (u < pi1 + pi2 ? 1 : 2);
}

void WlanMarkovLoss::Losses(std::uint8_t* out, std::size_t n) {
  int s = state_;
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = s == 1 ? 1 : 0;
    const double u = rng_.NextDouble();
    if (s == 0) {
      s = u < kQ ? 0 : 1;
    } else if (s == 1) {
      s = u < kP ? 0 : (u < kP + kq ? 1 : 2);
    } else {
      s = u < 1.0 - kQprime ? 1 : 2;  // row of state 3 in the order 1 (0), 2, 3
    }
  }
  state_ = s;
}

// ---- Trace ----

Status TraceLoss::Create(const std::uint8_t* mask, std::size_t n, std::unique_ptr<TraceLoss>* out) {
  if (n == 0) return InvalidArgument("a loss trace needs at least one entry");
  for (std::size_t i = 0; i < n; ++i) {
    if (mask[i] > 1) {
      return InvalidArgument("loss trace entry " + std::to_string(i) + " is " +
                             std::to_string(mask[i]) + "; entries must be 0 or 1");
    }
  }
  out->reset(new TraceLoss(std::vector<std::uint8_t>(mask, mask + n)));
  return Status::Ok();
}

Status TraceLoss::ParseText(const std::uint8_t* text, std::size_t size,
                            std::vector<std::uint8_t>* mask) {
  std::size_t pos = 0;
  std::size_t line = 0;
  mask->clear();
  while (pos < size) {
    ++line;
    std::size_t end = pos;
    while (end < size && text[end] != '\n') ++end;
    std::size_t a = pos, b = end;
    while (a < b && (text[a] == ' ' || text[a] == '\t')) ++a;
    while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r')) --b;
    pos = end + 1;
    if (a == b || text[a] == '#') continue;
    if (b - a == 1 && (text[a] == '0' || text[a] == '1')) {
      mask->push_back(static_cast<std::uint8_t>(text[a] - '0'));
      continue;
    }
    return InvalidArgument("loss trace line " + std::to_string(line) +
                           ": expected '0' (received) or '1' (lost), a comment '#...' or an "
                           "empty line");
  }
  if (mask->empty()) return InvalidArgument("loss trace holds no 0/1 entry");
  return Status::Ok();
}

void TraceLoss::Losses(std::uint8_t* out, std::size_t n) {
  const std::size_t len = mask_.size();
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = mask_[pos_];
    if (++pos_ == len) pos_ = 0;
  }
}

}  // namespace soundspring::transport
