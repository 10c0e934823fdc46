// cdf.h's normative det_exp and the row quantiser of cdf_from_logits, written once over
// GCC/Clang vector extensions and compiled in cdf.cc (the scalar det_exp) and in every
// lm_kernels_<isa>.cc with that ISA's flags (lm_kernels.h cdf_exp_row and cdf_row: the same
// IEEE double operations, lane by lane, on the widest vector unit).
//
// det_exp_core is one template over the scalar double and the vector types: every lane of
// a vector runs exactly the scalar sequence of operations, so the scalar instantiation is
// the definition and every vector width gives its bits. The row kernels evaluate it on
// blocks of kPack register-sized vectors at once (CdfPack), so the degree-12 Horner chains
// of neighbouring symbols overlap instead of waiting on each other's latency. Lengths that
// are not a whole number of blocks finish on the scalar instantiation.
//
// Included inside an anonymous namespace after <cstdint> and <cstring>.
#pragma once

// Blocks wider than the build's vector registers are passed and returned by value between
// these internal-linkage inline functions; GCC's note that such a call's ABI differs
// between ISA levels concerns calls across translation units, which never happen here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

constexpr double kInvLn2 = 1.44269504088896338700e+00;
constexpr double kLn2Hi = 6.93147180369123816490e-01;  // 0x3FE62E42FEE00000: k * hi is exact
constexpr double kLn2Lo = 1.90821492927058770002e-10;  // 0x3DEA39EF35793C76
constexpr double kExpCutoff = -700.0;

// 1/n! for n = 12 down to 0, for Horner's scheme.
constexpr double kInvFact[13] = {
    1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0,
    1.0 / 5040.0,      1.0 / 720.0,      1.0 / 120.0,     1.0 / 24.0,     1.0 / 6.0,
    1.0 / 2.0,         1.0,              1.0};

constexpr double kRoundMagic = 6755399441055744.0;           // 1.5 * 2^52
constexpr uint64_t kRoundMagicBits = 0x4338000000000000ull;  // its bit pattern

// Branch-free det_exp for x >= kExpCutoff (callers clamp and mask), for D = double with
// U = uint64_t, or D a vector of doubles with U the uint64 vector of the same size.
// k = rint(x / ln2) by the magic-number addition (exact IEEE round-half-even; the low
// mantissa bits of x * (1/ln2) + 1.5 * 2^52 are k itself), and p * 2^k by adding k to the
// exponent field of p (modulo 2^64, so negative k works), exact because p * 2^k stays
// normal (k >= -1010, p in [0.7, 1.5]).
template <class D, class U>
[[gnu::always_inline]] inline D det_exp_core(const D& x) {
  const D t = x * kInvLn2 + kRoundMagic;
  const D k = t - kRoundMagic;
  const D r = (x - k * kLn2Hi) - k * kLn2Lo;
  // Horner's scheme from 1/12! (the first step is kInvFact[0] * r + kInvFact[1]).
  D p = r * kInvFact[0] + kInvFact[1];
  p = p * r + kInvFact[2];
  p = p * r + kInvFact[3];
  p = p * r + kInvFact[4];
  p = p * r + kInvFact[5];
  p = p * r + kInvFact[6];
  p = p * r + kInvFact[7];
  p = p * r + kInvFact[8];
  p = p * r + kInvFact[9];
  p = p * r + kInvFact[10];
  p = p * r + kInvFact[11];
  p = p * r + kInvFact[12];
  U tbits, pbits;
  std::memcpy(&tbits, &t, sizeof t);
  std::memcpy(&pbits, &p, sizeof p);
  pbits += (tbits - kRoundMagicBits) << 52;
  std::memcpy(&p, &pbits, sizeof p);
  return p;
}

// cdf.h's det_exp (0 below the cutoff), the scalar definition.
inline double det_exp_scalar(double x) {
  return x < kExpCutoff ? 0.0 : det_exp_core<double, uint64_t>(x);
}

// kPack register-sized vectors that det_exp_core treats as one value: each operation runs
// on the kPack vectors one after the other, so the compiler emits kPack independent
// instructions back to back and the Horner chains of neighbouring vectors overlap.
constexpr int kPack = 4;

template <class T>
struct CdfPack {
  T v[kPack];
};

template <class T>
[[gnu::always_inline]] inline CdfPack<T> operator+(const CdfPack<T>& a, const CdfPack<T>& b) {
  CdfPack<T> y;
  for (int u = 0; u < kPack; ++u) y.v[u] = a.v[u] + b.v[u];
  return y;
}

template <class T>
[[gnu::always_inline]] inline CdfPack<T> operator-(const CdfPack<T>& a, const CdfPack<T>& b) {
  CdfPack<T> y;
  for (int u = 0; u < kPack; ++u) y.v[u] = a.v[u] - b.v[u];
  return y;
}

template <class T>
[[gnu::always_inline]] inline CdfPack<T> operator*(const CdfPack<T>& a, const CdfPack<T>& b) {
  CdfPack<T> y;
  for (int u = 0; u < kPack; ++u) y.v[u] = a.v[u] * b.v[u];
  return y;
}

template <class T, class S>
[[gnu::always_inline]] inline CdfPack<T> operator+(const CdfPack<T>& a, S b) {
  CdfPack<T> y;
  for (int u = 0; u < kPack; ++u) y.v[u] = a.v[u] + b;
  return y;
}

template <class T, class S>
[[gnu::always_inline]] inline CdfPack<T> operator-(const CdfPack<T>& a, S b) {
  CdfPack<T> y;
  for (int u = 0; u < kPack; ++u) y.v[u] = a.v[u] - b;
  return y;
}

template <class T, class S>
[[gnu::always_inline]] inline CdfPack<T> operator*(const CdfPack<T>& a, S b) {
  CdfPack<T> y;
  for (int u = 0; u < kPack; ++u) y.v[u] = a.v[u] * b;
  return y;
}

template <class T>
[[gnu::always_inline]] inline CdfPack<T> operator<<(const CdfPack<T>& a, int bits) {
  CdfPack<T> y;
  for (int u = 0; u < kPack; ++u) y.v[u] = a.v[u] << bits;
  return y;
}

template <class T>
[[gnu::always_inline]] inline CdfPack<T>& operator+=(CdfPack<T>& a, const CdfPack<T>& b) {
  for (int u = 0; u < kPack; ++u) a.v[u] += b.v[u];
  return a;
}

// The vector types of a build whose registers hold W doubles (a block is kPack * W symbols).
template <int W>
struct CdfVec {
  static constexpr int kBlock = kPack * W;
  static_assert(kBlock % 4 == 0, "blocks hold whole groups of the 4 partial sums");
  typedef float F2 __attribute__((vector_size(8 * W)));      // 2W logits: one register
  typedef int32_t F2Mask __attribute__((vector_size(8 * W)));
  typedef double D __attribute__((vector_size(8 * W)));      // W exponentials
  typedef int64_t DMask __attribute__((vector_size(8 * W)));
  typedef uint64_t U __attribute__((vector_size(8 * W)));
  typedef int32_t I __attribute__((vector_size(4 * W)));     // W frequencies
  typedef double D4 __attribute__((vector_size(32)));        // the 4 partial sums
  typedef uint32_t U4 __attribute__((vector_size(16)));      // 4 CDF entries
};

template <class T>
inline T cdf_load(const void* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class T>
inline void cdf_store(void* p, const T& v) {
  std::memcpy(p, &v, sizeof v);
}

// scratch[i] = det_exp(double(logits[i]) - m) for i < n, and returns the normative sum of
// cdf.h: (s_0 + s_1) + (s_2 + s_3), s_j the left-to-right sum of the e_i with i % 4 == j.
template <int W>
inline double cdf_exp_sum_row(const float* logits, int n, double m, double* scratch) {
  using V = CdfVec<W>;
  constexpr int kBlock = V::kBlock;
  typename V::D4 acc = {0.0, 0.0, 0.0, 0.0};
  int i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    CdfPack<typename V::D> x;
    typename V::DMask under[kPack];
    for (int u = 0; u < kPack; ++u) {
      typename V::D xu;
      for (int l = 0; l < W; ++l) xu[l] = static_cast<double>(logits[i + u * W + l]);
      xu -= m;
      under[u] = xu < kExpCutoff;
      x.v[u] = under[u] ? kExpCutoff : xu;
    }
    const CdfPack<typename V::D> e = det_exp_core<CdfPack<typename V::D>,
                                                  CdfPack<typename V::U>>(x);
    for (int u = 0; u < kPack; ++u) cdf_store(scratch + i + u * W, under[u] ? 0.0 : e.v[u]);
    for (int q = 0; q < kBlock; q += 4) acc += cdf_load<typename V::D4>(scratch + i + q);
  }
  double lanes[4] = {acc[0], acc[1], acc[2], acc[3]};
  for (; i < n; ++i) {  // blocks hold whole groups of 4: lane i % 4 continues
    scratch[i] = det_exp_scalar(static_cast<double>(logits[i]) - m);
    lanes[i % 4] += scratch[i];
  }
  return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

// lm_kernels.h CdfExpRowFn.
template <int W>
void cdf_exp_row_impl(const float* logits, int n, double m, double* scratch) {
  cdf_exp_sum_row<W>(logits, n, m, scratch);
}

// lm_kernels.h CdfRowFn: cdf.h's quantiser for one row, in four passes over it (max and
// validity; first index of the max; exponentials and their sum; frequencies), then the
// residual and the prefix sums.
template <int W>
soundspring::lm::CdfRowError cdf_row_impl(const float* logits, int n, int precision_bits,
                                          double* scratch, uint32_t* cdf, int* bad_index) {
  using V = CdfVec<W>;
  using soundspring::lm::CdfRowError;
  constexpr int kF = 2 * W;  // floats per register
  constexpr float kFloatMax = 3.4028234663852886e+38f;
  // Max over the row in kPack running maxima; a lane of `finite` turns 0 on NaN or +inf
  // (!(v <= FLT_MAX)).
  typename V::F2 vmax[kPack];
  typename V::F2Mask finite;
  for (int l = 0; l < kF; ++l) finite[l] = -1;
  for (int u = 0; u < kPack; ++u)
    for (int l = 0; l < kF; ++l) vmax[u][l] = -__builtin_inff();
  int i = 0;
  for (; i + kPack * kF <= n; i += kPack * kF) {
    for (int u = 0; u < kPack; ++u) {
      const typename V::F2 v = cdf_load<typename V::F2>(logits + i + u * kF);
      finite &= v <= kFloatMax;
      vmax[u] = v > vmax[u] ? v : vmax[u];
    }
  }
  float m = -__builtin_inff();
  bool ok = true;
  for (int l = 0; l < kF; ++l) {
    ok = ok && finite[l] != 0;
    for (int u = 0; u < kPack; ++u) m = vmax[u][l] > m ? vmax[u][l] : m;
  }
  for (int t = i; t < n; ++t) {
    ok = ok && logits[t] <= kFloatMax;
    m = logits[t] > m ? logits[t] : m;
  }
  if (!ok) {
    int t = 0;
    while (logits[t] <= kFloatMax) ++t;
    *bad_index = t;
    return CdfRowError::kNonFinite;
  }
  if (!(m > -kFloatMax)) return CdfRowError::kAllNegInf;
  // The argmax is the first index holding the max (the scalar definition's, ties included).
  for (i = 0; i + kF <= n; i += kF) {
    const typename V::F2Mask eq = cdf_load<typename V::F2>(logits + i) == m;
    uint64_t any = 0;
    for (int l = 0; l < kF; l += 2)
      any |= cdf_load<uint64_t>(reinterpret_cast<const char*>(&eq) + 4 * l);
    if (any != 0) break;
  }
  int arg = i;
  while (logits[arg] != m) ++arg;
  // The exponentials and their normative sum (m = logits[arg]: the max's own bits).
  const double sum = cdf_exp_sum_row<W>(logits, n, static_cast<double>(logits[arg]), scratch);
  const int64_t total = int64_t{1} << precision_bits;
  const double scale = static_cast<double>(total) / sum;
  // f_i = max(1, floor(e_i * scale + 0.5)): e * scale + 0.5 is in [0.5, T + 0.5], so
  // truncation is floor. Frequencies go to cdf + 1, prefix-summed in place below.
  uint32_t* freq = cdf + 1;
  typename V::I vused = {};
  const typename V::I one = vused + 1;
  for (i = 0; i + W <= n; i += W) {
    const typename V::D y = cdf_load<typename V::D>(scratch + i) * scale + 0.5;
    typename V::I f = __builtin_convertvector(y, typename V::I);
    f = f > 0 ? f : one;
    cdf_store(freq + i, f);
    vused += f;
  }
  int32_t used = 0;  // <= T + V <= 2^17
  for (int l = 0; l < W; ++l) used += vused[l];
  for (; i < n; ++i) {
    const auto rounded = static_cast<int32_t>(scratch[i] * scale + 0.5);
    const int32_t f = rounded > 0 ? rounded : 1;
    freq[i] = static_cast<uint32_t>(f);
    used += f;
  }
  int64_t residual = total - used;
  if (residual >= 0 || static_cast<int64_t>(freq[arg]) + residual >= 1) {
    freq[arg] = static_cast<uint32_t>(static_cast<int64_t>(freq[arg]) + residual);
  } else {
    for (int t = 0; t < n && residual < 0; ++t) {
      if (freq[t] > 1) {
        const int64_t spare = static_cast<int64_t>(freq[t]) - 1;
        const int64_t take = spare < -residual ? spare : -residual;
        freq[t] = static_cast<uint32_t>(static_cast<int64_t>(freq[t]) - take);
        residual += take;
      }
    }
  }
  // Prefix sums, 4 entries at a time: an in-register inclusive scan of each group plus the
  // running total of the groups before it (exact integer sums: any order gives the bits).
  cdf[0] = 0;
  const typename V::U4 zero = {0, 0, 0, 0};
  typename V::U4 carry = zero;
  for (i = 0; i + 4 <= n; i += 4) {
    typename V::U4 x = cdf_load<typename V::U4>(freq + i);
    x += __builtin_shufflevector(x, zero, 4, 0, 1, 2);
    x += __builtin_shufflevector(x, zero, 4, 4, 0, 1);
    cdf_store(freq + i, x + carry);
    carry += __builtin_shufflevector(x, x, 3, 3, 3, 3);
  }
  for (; i < n; ++i) cdf[i + 1] += cdf[i];
  return CdfRowError::kNone;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
