// The matmul_bias kernels of lm_kernels.h, written once over a vector-traits type.
//
// Included only by the lm_kernels_<isa>.cc translation units, inside an anonymous namespace,
// with a traits struct V providing: type T, kLanes, kRows, kVectors, zero(), load(p),
// store(p, v), set1(f), add(a, b), mul(a, b), and load_weights(p) for the weight types W
// it supports (const float*; const uint16_t* binary16 and const int8_t* block-float q, each
// widened exactly to float32). Every instantiation is therefore private to its translation
// unit.
//
// Tiling: V::kRows rows x V::kVectors vectors of partial sums per tile (chosen per ISA to
// fit its registers). Tiling only changes which independent columns and rows run
// together; each column's sum is always lm_kernels.h's blocked sequence. The weight
// storage only changes how a lane block of weights is loaded: whatever W, the vector that
// enters the multiplications holds the float32 weights themselves, so every storage gives
// the float32 kernel's bits. The includer has already included <cstddef> and <cstdint>
// (through lm_kernels.h): no header is included from here, since this file is read inside
// a namespace.
#pragma once

// Whether weights of type W carry a per-column scale (block floating point: W(i, c) =
// q * scale[c], scale[c] = 2^e_c): int8 only.
template <class W>
struct ColumnScaled {
  static constexpr bool kValue = false;
};
template <>
struct ColumnScaled<int8_t> {
  static constexpr bool kValue = true;
};

// The weights of columns [c, c + N * kLanes): lane block n starts in panel (c + n kLanes) / 16
// at offset (c + n kLanes) % 16, and advances by kColumnAlign floats per input. scale
// [c ..] is read only for column-scaled W (nullptr otherwise).
template <class V, class W, int R, int N>
inline void matmul_bias_tile(const float* x, size_t ldx, const W* w, const float* scale,
                             size_t in, size_t c, const float* bias, float* y, size_t ldy) {
  constexpr size_t kPanel = static_cast<size_t>(soundspring::lm::kColumnAlign);
  const W* wp[N];
  for (int n = 0; n < N; ++n) {
    const size_t col = c + static_cast<size_t>(n) * V::kLanes;
    wp[n] = w + (col / kPanel) * in * kPanel + col % kPanel;
  }
  constexpr size_t kBlock = static_cast<size_t>(soundspring::lm::kSumBlock);
  // The running totals live in y (one load and store per block of kSumBlock inputs), the
  // block's partial sums in registers.
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < N; ++n)
      V::store(y + static_cast<size_t>(r) * ldy + c + static_cast<size_t>(n) * V::kLanes,
               V::zero());
  for (size_t i0 = 0; i0 < in; i0 += kBlock) {
    const size_t i1 = i0 + kBlock < in ? i0 + kBlock : in;
    typename V::T part[R][N];
    for (int r = 0; r < R; ++r)
      for (int n = 0; n < N; ++n) part[r][n] = V::zero();
    for (size_t i = i0; i < i1; ++i) {
      typename V::T wv[N];
      for (int n = 0; n < N; ++n) wv[n] = V::load_weights(wp[n] + i * kPanel);
      if constexpr (ColumnScaled<W>::kValue) {
        // float(q) * 2^e_c is exactly the float32 weight (a representable product).
        for (int n = 0; n < N; ++n)
          wv[n] = V::mul(wv[n], V::load(scale + c + static_cast<size_t>(n) * V::kLanes));
      }
      for (int r = 0; r < R; ++r) {
        const typename V::T xb = V::set1(x[static_cast<size_t>(r) * ldx + i]);
        for (int n = 0; n < N; ++n) part[r][n] = V::add(part[r][n], V::mul(wv[n], xb));
      }
    }
    for (int r = 0; r < R; ++r)
      for (int n = 0; n < N; ++n) {
        float* out = y + static_cast<size_t>(r) * ldy + c + static_cast<size_t>(n) * V::kLanes;
        V::store(out, V::add(V::load(out), part[r][n]));
      }
  }
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < N; ++n) {
      const size_t col = c + static_cast<size_t>(n) * V::kLanes;
      float* out = y + static_cast<size_t>(r) * ldy + col;
      V::store(out, V::add(V::load(out), V::load(bias + col)));
    }
}

template <class V, class W, int N>
inline void matmul_bias_column_block(const float* x, size_t ldx, size_t rows, const W* w,
                                     const float* scale, size_t in, size_t c, const float* bias,
                                     float* y, size_t ldy) {
  size_t r = 0;
  for (; r + V::kRows <= rows; r += V::kRows)
    matmul_bias_tile<V, W, V::kRows, N>(x + r * ldx, ldx, w, scale, in, c, bias, y + r * ldy, ldy);
  // Two leftover rows share one pass over the weights (a streaming step's 2-frame chunk).
  if constexpr (V::kRows > 2) {
    for (; r + 2 <= rows; r += 2)
      matmul_bias_tile<V, W, 2, N>(x + r * ldx, ldx, w, scale, in, c, bias, y + r * ldy, ldy);
  }
  for (; r < rows; ++r)
    matmul_bias_tile<V, W, 1, N>(x + r * ldx, ldx, w, scale, in, c, bias, y + r * ldy, ldy);
}

template <class V, class W>
void matmul_bias_scaled(const float* x, size_t ldx, size_t rows, const W* w, const float* scale,
                        size_t in, const float* bias, float* y, size_t ldy, size_t cols) {
  constexpr size_t kBlock = static_cast<size_t>(V::kVectors) * V::kLanes;
  size_t c = 0;
  for (; c + kBlock <= cols; c += kBlock)
    matmul_bias_column_block<V, W, V::kVectors>(x, ldx, rows, w, scale, in, c, bias, y, ldy);
  for (; c < cols; c += V::kLanes)
    matmul_bias_column_block<V, W, 1>(x, ldx, rows, w, scale, in, c, bias, y, ldy);
}

// lm_kernels.h MatmulBiasFn (W = float) and MatmulBiasHalfFn (W = uint16_t).
template <class V, class W>
void matmul_bias_impl(const float* x, size_t ldx, size_t rows, const W* w, size_t in,
                      const float* bias, float* y, size_t ldy, size_t cols) {
  static_assert(!ColumnScaled<W>::kValue, "column-scaled weights need their scales");
  matmul_bias_scaled<V, W>(x, ldx, rows, w, nullptr, in, bias, y, ldy, cols);
}

// lm_kernels.h MatmulBiasInt8Fn.
template <class V>
void matmul_bias_int8_impl(const float* x, size_t ldx, size_t rows, const int8_t* w,
                           const float* scale, size_t in, const float* bias, float* y,
                           size_t ldy, size_t cols) {
  matmul_bias_scaled<V, int8_t>(x, ldx, rows, w, scale, in, bias, y, ldy, cols);
}
