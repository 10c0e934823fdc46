// The streaming codec's encoder and decoder steps in C++ (no Python, no torch): the
// per-chunk path of python/soundspring/models/seanet.py (SEANetEncoder.step) and
// models/vocos.py (VocosDecoder.step) for any CodecConfig of that family, on the engine's
// matrix and activation kernels (lm_kernels.h, chosen at run time or forced).
//
// Shapes: T samples at 16 kHz, n frames of `hop` samples, D latent_dim, C channels.
// Activations are channels-last ([rows, C], row-major) throughout, as in the PyTorch fast
// path (models/conv.py): a causal convolution's output row t is one row of a matrix
// product over the window of rows t * stride + j * dilation (j < kernel) of
// (history ++ input), the history being the last `pad` input rows of the previous step.
//
// Encoder::Step: wav float32 [n * hop] -> latents float32 [n, D]. The state holds each
//   conv's history; concatenated steps equal one step over the concatenated input.
// Decoder::Step: latents float32 [n, D] -> wav float32 [n * hop], the offline decode
//   delayed by lookahead = istft_n_fft - istft_hop samples (zeros at the stream's start);
//   Flush gives the unfinished last `lookahead` samples. The inverse real FFT and its Hann
//   window are one matrix product (a [N/2+1 re, N/2+1 im] -> [N] windowed-iDFT matrix,
//   made in double and rounded once), so every sub-frame's samples are lm_kernels.h's
//   blocked sums.
//
// Determinism: every matrix product is lm_kernels.h's fixed blocked sum, every activation
// det_math.h's function (lm_kernels.h elu / gelu, the same bits on every level), LayerNorm
// det::layer_norm_row, the depthwise taps summed left to right then the bias, and the only
// libm calls are the decoder's cosf / sinf of the predicted phases. So the encoder's
// latents (and hence the tokens) are the same bits on every instruction-set level and
// machine; the decoder's audio is too wherever libm's cosf / sinf agree. Agreement with
// PyTorch is to float rounding (PyTorch sums in other orders): about 1e-6 relative.
//
// Weights come as float32 tensors in PyTorch's layout keyed by the Codec state-dict names
// (encoder.* and decoder.*; see Encoder::Create / Decoder::Create). Create checks every
// name and shape and copies them into its own packed layout; its matrices are held as
// block-float int8 when every column is exactly q 2^e (|q| <= 127, models/block_float.py),
// else as binary16 when every weight is exactly a half (the shipped fp16 file), where the
// ISA has that product (lm::pack_smallest): the same values, so the same bits, a quarter
// or a half of the bytes read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/lm_engine.h"
#include "core/lm_kernels.h"
#include "core/packed_linear.h"
#include "core/status.h"

namespace soundspring::codec {

/// The fields of CodecConfig that inference needs.
struct CodecShape {
  int latent_dim = 0;                  // D
  int enc_channels = 0;                // channels after the encoder's input conv
  int enc_max_channels = 0;            // channel cap of the down-sampling blocks
  std::vector<int> enc_strides;        // product = hop
  std::vector<int> enc_res_dilations;  // one residual unit per dilation in every block
  int dec_dim = 0;
  int dec_intermediate = 0;
  int dec_layers = 0;
  int dec_kernel = 0;
  int istft_hop = 0;                   // H, divides hop
  int istft_n_fft = 0;                 // N, an even multiple of H
};

struct CodecOptions {
  lm::Isa isa = lm::Isa::kAuto;  // kernel level; one the CPU lacks is refused
};

/// Largest number of frames one Step takes (the transceiver uses at most 5).
constexpr int kMaxStepFrames = 256;

/// One causal convolution (dense, or depthwise when groups = channels).
struct CausalConv {
  int c_in = 0, c_out = 0, kernel = 0, stride = 1, dilation = 1, pad = 0;
  bool depthwise = false;
  lm::PackedLinear lin;        // dense: W(j c_in + i, o) = weight[o, i, j] (k-major rows)
  std::vector<float> dw_w;     // depthwise: [kernel, C] (tap-major)
  std::vector<float> dw_b;     // depthwise: [C]
};

/// Scratch buffers of one stream's steps: never part of its state (a copy starts empty).
class Workspace {
 public:
  Workspace() = default;
  Workspace(const Workspace&) {}
  Workspace& operator=(const Workspace&) { return *this; }
  Workspace(Workspace&&) = default;
  Workspace& operator=(Workspace&&) = default;
  std::vector<float> a, b, c, d, e;
};

/// A stream's encoder state: each conv's input history [pad, c_in], in the order of
/// Encoder::convs(). Copy it to snapshot the stream.
struct EncoderState {
  std::vector<std::vector<float>> history;
  int64_t frames = 0;
  Workspace work;
};

/// A stream's decoder state: conv histories (input conv, then each block's depthwise conv)
/// and the overlap-add tail [lookahead].
struct DecoderState {
  std::vector<std::vector<float>> history;
  std::vector<float> tail;
  int64_t frames = 0;
  Workspace work;
};

class Encoder {
 public:
  /// Expected names (C_0 = enc_channels; block b maps C_b -> C_{b+1} = min(2 C_b, max)):
  /// encoder.inp.conv.{weight [C_0, 1, 7], bias}; encoder.blocks.{b}.res.{u}.c1.conv
  /// .{weight [C_b / 2, C_b, 3], bias}, .c2.conv.{weight [C_b, C_b / 2, 1], bias};
  /// encoder.blocks.{b}.down.conv.{weight [C_{b+1}, C_b, 2 s_b], bias};
  /// encoder.out.conv.{weight [D, C_last, 3], bias}. Other names are ignored.
  static Status Create(const CodecShape& shape, const lm::TensorMap& weights,
                       const CodecOptions& options, std::unique_ptr<Encoder>* out);

  void NewState(EncoderState* state) const;

  /// wav float32 [n_samples] (finite, n_samples = n hop with 1 <= n <= kMaxStepFrames)
  /// -> latents float32 [n, D]; advances *state. kInvalidArgument (state untouched) for a
  /// bad length, non-finite samples or a state of another encoder.
  Status Step(EncoderState* state, const float* wav, int64_t n_samples, float* latents) const;

  int hop() const { return hop_; }
  int latent_dim() const { return shape_.latent_dim; }
  lm::Isa isa() const { return kernels_->isa; }
  /// How the matrices are held (one storage for all; never changes the bits).
  lm::WeightStorage weight_storage() const { return storage_; }
  bool half_weights() const { return storage_ == lm::WeightStorage::kBinary16; }
  const std::vector<CausalConv>& convs() const { return convs_; }

 private:
  Encoder() = default;
  bool CheckState(const EncoderState& state) const;
  CodecShape shape_;
  int hop_ = 0;
  lm::WeightStorage storage_ = lm::WeightStorage::kFloat32;
  const lm::Kernels* kernels_ = nullptr;
  std::vector<CausalConv> convs_;  // inp, per block: (c1, c2) per unit then down, out
};

class Decoder {
 public:
  /// Expected names: decoder.inp.conv.{weight [E, D, 3], bias} (E = dec_dim);
  /// decoder.norm_in.{weight, bias} [E]; decoder.blocks.{l}.dw.conv.{weight [E, 1, k],
  /// bias [E]}, .norm.{weight, bias} [E], .pw1.{weight [I, E], bias [I]},
  /// .pw2.{weight [E, I], bias [E]}, .gamma [E]; decoder.norm_out.{weight, bias} [E];
  /// decoder.head.{weight [S 2 (N/2 + 1), E], bias} (S = hop / H sub-frames per frame).
  static Status Create(const CodecShape& shape, const lm::TensorMap& weights,
                       const CodecOptions& options, std::unique_ptr<Decoder>* out);

  void NewState(DecoderState* state) const;

  /// latents float32 [n_frames, D] (finite, 1 <= n_frames <= kMaxStepFrames) -> wav
  /// float32 [n_frames hop]; advances *state. kInvalidArgument (state untouched) for a bad
  /// count, non-finite latents or a state of another decoder.
  Status Step(DecoderState* state, const float* latents, int n_frames, float* wav) const;

  /// The stream's unfinished last lookahead() samples (the overlap-add tail).
  Status Flush(const DecoderState& state, float* tail) const;

  int hop() const { return hop_; }
  int latent_dim() const { return shape_.latent_dim; }
  int lookahead() const { return shape_.istft_n_fft - shape_.istft_hop; }
  lm::Isa isa() const { return kernels_->isa; }
  /// How the matrices are held (one storage for all; never changes the bits).
  lm::WeightStorage weight_storage() const { return storage_; }
  bool half_weights() const { return storage_ == lm::WeightStorage::kBinary16; }

 private:
  struct Block {
    CausalConv dw;
    std::vector<float> norm_g, norm_b, gamma;
    lm::PackedLinear pw1, pw2;
  };
  Decoder() = default;
  bool CheckState(const DecoderState& state) const;
  CodecShape shape_;
  int hop_ = 0, sub_ = 0, bins_ = 0;
  lm::WeightStorage storage_ = lm::WeightStorage::kFloat32;
  const lm::Kernels* kernels_ = nullptr;
  CausalConv inp_;
  std::vector<float> norm_in_g_, norm_in_b_, norm_out_g_, norm_out_b_;
  std::vector<Block> blocks_;
  lm::PackedLinear head_;
  lm::PackedLinear idft_;         // [2 (N/2 + 1)] -> [N]: windowed inverse real DFT
};

}  // namespace soundspring::codec
