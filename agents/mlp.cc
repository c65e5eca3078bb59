#include "agents/mlp.h"

#include <cblas.h>

#include <Eigen/Core>
#include <cmath>
#include <stdexcept>

namespace loantwin {

Activation ParseActivation(const std::string& name) {
  if (name == "tanh") return Activation::kTanh;
  if (name == "relu") return Activation::kRelu;
  throw std::invalid_argument("unknown activation '" + name + "' (tanh, relu)");
}

MlpImpl::MlpImpl(int64_t in, const std::vector<int64_t>& hidden, int64_t out, double output_gain,
                 Activation act)
    : activation(act) {
  layers = register_module("layers", torch::nn::ModuleList());
  int64_t width = in;
  for (size_t i = 0; i <= hidden.size(); ++i) {
    const bool last = i == hidden.size();
    const int64_t next = last ? out : hidden[i];
    auto linear = torch::nn::Linear(width, next);
    torch::NoGradGuard no_grad;
    torch::nn::init::orthogonal_(linear->weight, last ? output_gain : std::sqrt(2.0));
    linear->bias.zero_();
    layers->push_back(linear);
    width = next;
  }
  std::vector<torch::nn::LinearImpl*> stack;
  for (const auto& l : *layers) stack.push_back(l->as<torch::nn::Linear>());
  stack_ = LinearStack(std::move(stack), activation);
}

torch::Tensor MlpImpl::forward(torch::Tensor x) {
  const size_t n = layers->size();
  for (size_t i = 0; i < n; ++i) {
    x = layers[i]->as<torch::nn::Linear>()->forward(x);
    if (i + 1 < n) x = activation == Activation::kTanh ? torch::tanh(x) : torch::relu(x);
  }
  return x;
}

namespace {
using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Products of at least this many multiply-adds go to the BLAS (OpenBLAS picks AVX2/AVX-512
/// kernels for the CPU at run time; Eigen here is compiled for baseline x86-64, SSE2); smaller
/// ones stay in Eigen, where the call costs less. The choice depends only on the shapes, so a
/// run's numbers do not change between calls of the same size.
constexpr int64_t kBlasMinMultiplyAdds = 16384;

/// C[m, n] = beta * C + A[m, k] * op(B) (row-major, beta 0 or 1), op(B) = B[k, n] or B[n, k]^T.
void Gemm(bool a_trans, bool b_trans, int64_t m, int64_t n, int64_t k, const float* a,
          const float* b, float beta, float* c) {
  if (m * n * k >= kBlasMinMultiplyAdds) {
    cblas_sgemm(CblasRowMajor, a_trans ? CblasTrans : CblasNoTrans,
                b_trans ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(k), 1.0f, a, static_cast<int>(a_trans ? m : k), b,
                static_cast<int>(b_trans ? k : n), beta, c, static_cast<int>(n));
    return;
  }
  Eigen::Map<RowMajor> out(c, m, n);
  if (beta == 0.0f) out.setZero();
  const Eigen::Map<const RowMajor> am(a, a_trans ? k : m, a_trans ? m : k);
  const Eigen::Map<const RowMajor> bm(b, b_trans ? n : k, b_trans ? k : n);
  if (a_trans && b_trans)
    out.noalias() += am.transpose() * bm.transpose();
  else if (a_trans)
    out.noalias() += am.transpose() * bm;
  else if (b_trans)
    out.noalias() += am * bm.transpose();
  else
    out.noalias() += am * bm;
}
}  // namespace

LinearStack::LinearStack(std::vector<torch::nn::LinearImpl*> layers, Activation activation)
    : layers_(std::move(layers)), activation_(activation) {}

void LinearStack::Layer(size_t i, const float* in, int64_t n, float* dst) const {
  const torch::nn::LinearImpl& l = *layers_[i];
  const int64_t in_w = l.weight.size(1), out_w = l.weight.size(0);
  const Eigen::Map<const Eigen::RowVectorXf> b(l.bias.data_ptr<float>(), out_w);
  Eigen::Map<RowMajor> y(dst, n, out_w);
  Gemm(false, true, n, out_w, in_w, in, l.weight.data_ptr<float>(), 0.0f, dst);
  y.rowwise() += b;
  if (i + 1 < layers_.size()) {
    if (activation_ == Activation::kTanh)
      y = y.array().tanh();
    else
      y = y.cwiseMax(0.0f);
  }
}

void LinearStack::Forward(const float* x, int64_t n, float* out) {
  const size_t count = layers_.size();
  const float* in = x;
  for (size_t i = 0; i < count; ++i) {
    float* dst = out;
    if (i + 1 < count) {
      const int64_t out_w = layers_[i]->weight.size(0);
      scratch_[i % 2].resize(static_cast<size_t>(n * out_w));
      dst = scratch_[i % 2].data();
    }
    Layer(i, in, n, dst);
    in = dst;
  }
}

void LinearStack::ForwardTrain(const float* x, int64_t n, float* out) {
  ForwardTrain(x, n, out, &tape_);
}

void LinearStack::BackwardTrain(const float* dout, int64_t n) {
  BackwardTrain(dout, n, tape_, nullptr);
}

void LinearStack::ForwardTrain(const float* x, int64_t n, float* out, Tape* tape) const {
  const size_t count = layers_.size();
  tape->acts.resize(count - 1);
  tape->in = x;
  const float* in = x;
  for (size_t i = 0; i < count; ++i) {
    float* dst = out;
    if (i + 1 < count) {
      const int64_t out_w = layers_[i]->weight.size(0);
      tape->acts[i].resize(static_cast<size_t>(n * out_w));
      dst = tape->acts[i].data();
    }
    Layer(i, in, n, dst);
    in = dst;
  }
}

void LinearStack::BackwardTrain(const float* dout, int64_t n, const Tape& tape, float* dx_out) {
  const float* dy = dout;
  for (size_t i = layers_.size(); i-- > 0;) {
    const torch::nn::LinearImpl& l = *layers_[i];
    const int64_t in_w = l.weight.size(1), out_w = l.weight.size(0);
    if (!l.weight.grad().defined() || !l.bias.grad().defined())
      throw std::logic_error("LinearStack::BackwardTrain: parameter gradients are not allocated");
    const float* in = i == 0 ? tape.in : tape.acts[i - 1].data();
    const Eigen::Map<const RowMajor> d(dy, n, out_w);
    Eigen::Map<Eigen::RowVectorXf> gb(l.bias.grad().data_ptr<float>(), out_w);
    Gemm(true, false, out_w, in_w, n, dy, in, 1.0f, l.weight.grad().data_ptr<float>());
    gb += d.colwise().sum();
    if (i == 0) {
      if (dx_out != nullptr)
        Gemm(false, false, n, in_w, out_w, dy, l.weight.data_ptr<float>(), 0.0f, dx_out);
      break;
    }
    std::vector<float>& buf = train_grad_[i % 2];
    buf.resize(static_cast<size_t>(n * in_w));
    Eigen::Map<RowMajor> dx(buf.data(), n, in_w);
    Gemm(false, false, n, in_w, out_w, dy, l.weight.data_ptr<float>(), 0.0f, buf.data());
    // Through the previous layer's activation, from its output a: tanh' = 1 - a^2; relu' = a > 0.
    const Eigen::Map<const RowMajor> a(in, n, in_w);
    if (activation_ == Activation::kTanh)
      dx.array() *= 1.0f - a.array().square();
    else
      dx.array() *= (a.array() > 0.0f).cast<float>();
    dy = buf.data();
  }
}

}  // namespace loantwin
