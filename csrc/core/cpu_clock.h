// Opt-in stage profiling of the C++ chunk coders: this process's CPU time (every thread, the
// engine's workers included: what Python's time.process_time counts), added to a counter
// while a scope runs. A null counter costs nothing, so the coders keep one only while a
// caller (soundspring bench transceiver) asks for the split.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>

namespace soundspring {

/// This process's CPU time in nanoseconds (a monotonic counter; only differences mean
/// anything).
inline std::int64_t ProcessCpuNanoseconds() {
#if defined(CLOCK_PROCESS_CPUTIME_ID)
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
#else
  return static_cast<std::int64_t>(static_cast<double>(std::clock()) *
                                   (1e9 / static_cast<double>(CLOCKS_PER_SEC)));
#endif
}

/// A stage's CPU-time counter, off until enabled; safe to read, switch and add from any
/// thread. Profiling state, not model state: every method is const.
class StageCounter {
 public:
  void enable(bool on) const { on_.store(on, std::memory_order_relaxed); }
  bool enabled() const { return on_.load(std::memory_order_relaxed); }
  std::int64_t nanoseconds() const { return ns_.load(std::memory_order_relaxed); }
  double seconds() const { return 1e-9 * static_cast<double>(nanoseconds()); }
  void add(std::int64_t ns) const { ns_.fetch_add(ns, std::memory_order_relaxed); }

 private:
  mutable std::atomic<bool> on_{false};
  mutable std::atomic<std::int64_t> ns_{0};
};

/// Adds the CPU time of the enclosing scope to `counter` when it is enabled.
class ScopedStageTimer {
 public:
  explicit ScopedStageTimer(const StageCounter& counter)
      : counter_(counter.enabled() ? &counter : nullptr),
        t0_(counter_ ? ProcessCpuNanoseconds() : 0) {}
  ~ScopedStageTimer() {
    if (counter_) counter_->add(ProcessCpuNanoseconds() - t0_);
  }
  ScopedStageTimer(const ScopedStageTimer&) = delete;
  ScopedStageTimer& operator=(const ScopedStageTimer&) = delete;

 private:
  const StageCounter* counter_;
  std::int64_t t0_;
};

}  // namespace soundspring
