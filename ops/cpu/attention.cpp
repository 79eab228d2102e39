#include "ops/cpu/attention.h"

// GCC 12 reports a false "(may be) used uninitialized" inside Eigen's AVX-512 reductions and GEMM
// kernel (_mm256_undefined_pd in avx512fintrin.h; the definite form under -fsanitize builds); the
// warning is about the intrinsic, not this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/strided.h"

namespace remoe::cpu {
namespace {

constexpr int64_t kBq = kAttentionBlock;  // query rows per block
constexpr int64_t kBk = kAttentionBlock;  // key rows per block

template <class T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
// n consecutive time steps of one head: rows of length D, `st` elements apart.
template <class T>
using ConstRows = Eigen::Map<const Mat<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using MutRows = Eigen::Map<Mat<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
// Per-row statistics of a block.
template <class T>
using Vec = Eigen::Array<T, Eigen::Dynamic, 1>;

// Where element (b, t, h, 0) of a [B, T, H, D] tensor lives (its last axis has stride 1).
template <class T>
struct Heads {
  T* p;
  int64_t sb, st, sh, D;
  explicit Heads(const Tensor& x)
      : p(x.data<T>()), sb(x.strides()[0]), st(x.strides()[1]), sh(x.strides()[2]), D(x.shape()[3]) {}
  ConstRows<T> rows(int64_t b, int64_t h, int64_t t0, int64_t n) const {
    return ConstRows<T>(p + b * sb + t0 * st + h * sh, n, D, Eigen::OuterStride<>(st));
  }
  MutRows<T> mut_rows(int64_t b, int64_t h, int64_t t0, int64_t n) const {
    return MutRows<T>(p + b * sb + t0 * st + h * sh, n, D, Eigen::OuterStride<>(st));
  }
};

// How many keys of block [j0, j0 + nc) query row t may see: all of them without the causal
// mask, keys j0..t with it (0 when the whole block lies in the row's future).
inline int64_t visible(bool causal, int64_t t, int64_t j0, int64_t nc) {
  return causal ? std::clamp<int64_t>(t - j0 + 1, 0, nc) : nc;
}

struct Dims {
  int64_t B, T, Hq, Hkv, D, G;  // G = Hq / Hkv query heads per kv head
  explicit Dims(const Tensor& q, const Tensor& k)
      : B(q.shape()[0]), T(q.shape()[1]), Hq(q.shape()[2]), Hkv(k.shape()[2]), D(q.shape()[3]), G(Hq / Hkv) {}
  int64_t blocks(int64_t n) const { return (T + n - 1) / n; }
  // About the multiply-adds of one pass (B·Hq·T²·D). Below kParallelGrain the pass runs on one
  // thread; this also keeps Eigen from opening its own parallel region for a tile product
  // (it parallelises only products of ≥ 100000 multiply-adds, and never inside an active region).
  int64_t work() const { return B * Hq * T * T * D; }
};

template <class T>
void forward_impl(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, T scale, const Tensor& out,
                  const Tensor& lse) {
  const Dims d(q, k);
  const Heads<T> Q(q), K(k), V(v), O(out);
  T* lp = lse.data<T>();
  const int64_t nq = d.blocks(kBq), tasks = d.B * d.Hq * nq;
#pragma omp parallel if (d.work() >= kParallelGrain)
  {
    // Scratch of one thread. Eigen allocates aligned, and the score rows are kBk apart, so the
    // row-wise exp runs on aligned packets without a scalar prologue.
    Mat<T> s_buf(kBq, kBk), acc_buf(kBq, d.D);
    Vec<T> m(kBq), l(kBq), m_new(kBq), alpha(kBq);
    // Tasks under the causal mask differ in length (late query blocks see more keys): dynamic.
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t ib = task % nq, h = (task / nq) % d.Hq, b = task / (nq * d.Hq);
      const int64_t i0 = ib * kBq, nr = std::min(kBq, d.T - i0), g = h / d.G;
      const auto Qi = Q.rows(b, h, i0, nr);
      auto acc = acc_buf.topRows(nr);
      acc.setZero();
      m.head(nr).setConstant(-INFINITY);
      l.head(nr).setZero();
      // Online softmax: m = running max of the row's scores, l = Σ exp(s − m), acc = Σ exp(s − m)·v.
      // A new block with max m' rescales both by α = exp(m − m'). Keys past the block's last query
      // are all masked, so the causal walk stops there.
      const int64_t jend = causal ? i0 + nr : d.T;
      for (int64_t j0 = 0; j0 < jend; j0 += kBk) {
        const int64_t nc = std::min(kBk, jend - j0);
        const bool masked = causal && j0 + nc - 1 > i0;  // the tile reaches above the diagonal
        auto S = s_buf.topLeftCorner(nr, nc);
        S.noalias() = Qi * K.rows(b, g, j0, nc).transpose();
        if (masked)
          for (int64_t r = 0; r < nr; ++r) {
            const int64_t vis = visible(true, i0 + r, j0, nc);
            S.row(r).tail(nc - vis).setConstant(-INFINITY);
          }
        // Every row saw key 0 in the first block, so m' is finite from there on; on the first
        // block α = exp(−inf) multiplies l = 0 and acc = 0 (Eigen's exp returns a tiny value there,
        // not 0; masked scores are zeroed explicitly after their exp for the same reason).
        m_new.head(nr) = m.head(nr).max(S.rowwise().maxCoeff().array() * scale);
        alpha.head(nr) = (m.head(nr) - m_new.head(nr)).exp();
        for (int64_t r = 0; r < nr; ++r) {
          auto srow = S.row(r);
          srow = (srow.array() * scale - m_new[r]).exp().matrix();
          if (masked) srow.tail(nc - visible(true, i0 + r, j0, nc)).setZero();
          acc.row(r) *= alpha[r];
        }
        l.head(nr) = l.head(nr) * alpha.head(nr) + S.rowwise().sum().array();
        m.head(nr) = m_new.head(nr);
        acc.noalias() += S * V.rows(b, g, j0, nc);
      }
      O.mut_rows(b, h, i0, nr) = (acc.array().colwise() / l.head(nr)).matrix();  // l ≥ 1: key at the max
      Eigen::Map<Vec<T>>(lp + (b * d.Hq + h) * d.T + i0, nr) = m.head(nr) + l.head(nr).log();
    }
  }
}

// Shared state of the backward passes.
template <class T>
struct Backward {
  Dims d;
  Heads<T> Q, K, V, dO, dQ;
  const T* L;   // lse [B, Hq, T]
  const T* Di;  // rowsum(dO ∘ O) [B, Hq, T]
  T scale;
  bool causal;

  // Scratch of one thread: the P tile, the dP / dS tile, the dK and dV accumulators of a key block.
  struct Scratch {
    Mat<T> p, ds, dk, dv;
    explicit Scratch(int64_t D) : p(kBq, kBk), ds(kBq, kBk), dk(kBk, D), dv(kBk, D) {}
  };

  // One (query block [i0, i0 + nr) of head h) × (key block [j0, j0 + nc) of kv head g) tile. Adds
  // scale·dS·K_j to dq_i when given, and Pᵀ·dO_i, scale·dSᵀ·Q_i to s.dk, s.dv when with_kv.
  template <class DQ>
  void tile(Scratch& s, int64_t b, int64_t h, int64_t g, int64_t i0, int64_t nr, int64_t j0, int64_t nc, DQ* dq_i,
            bool with_kv) const {
    const bool masked = causal && j0 + nc - 1 > i0;
    const auto Qi = Q.rows(b, h, i0, nr), Kj = K.rows(b, g, j0, nc), Vj = V.rows(b, g, j0, nc);
    const auto dOi = dO.rows(b, h, i0, nr);
    const T* Lr = L + (b * d.Hq + h) * d.T + i0;
    const T* Dr = Di + (b * d.Hq + h) * d.T + i0;
    auto P = s.p.topLeftCorner(nr, nc);
    auto dS = s.ds.topLeftCorner(nr, nc);
    P.noalias() = Qi * Kj.transpose();
    for (int64_t r = 0; r < nr; ++r) {  // P = exp(scale·s − L), 0 where masked
      auto prow = P.row(r);
      prow = (prow.array() * scale - Lr[r]).exp().matrix();
      if (masked) prow.tail(nc - visible(true, i0 + r, j0, nc)).setZero();
    }
    if (with_kv) s.dv.topRows(nc).noalias() += P.transpose() * dOi;
    dS.noalias() = dOi * Vj.transpose();  // dP
    for (int64_t r = 0; r < nr; ++r)      // dS = P ∘ (dP − D_i), times scale for both uses below
      dS.row(r) = (P.row(r).array() * (dS.row(r).array() - Dr[r]) * scale).matrix();
    if (with_kv) s.dk.topRows(nc).noalias() += dS.transpose() * Qi;
    if (dq_i) dq_i->noalias() += dS * Kj;
  }

  // dK_j, dV_j of key block jb of kv head g (all query heads of the group), plus dQ when asked.
  void key_block(Scratch& s, int64_t b, int64_t g, int64_t jb, bool with_dq, const Heads<T>& dK,
                 const Heads<T>& dV) const {
    const int64_t j0 = jb * kBk, nc = std::min(kBk, d.T - j0);
    s.dk.topRows(nc).setZero();
    s.dv.topRows(nc).setZero();
    // Under the causal mask, query blocks wholly before j0 see none of these keys.
    const int64_t ib0 = causal ? j0 / kBq : 0;
    for (int64_t h = g * d.G; h < (g + 1) * d.G; ++h) {
      for (int64_t i0 = ib0 * kBq; i0 < d.T; i0 += kBq) {
        const int64_t nr = std::min(kBq, d.T - i0);
        if (with_dq) {
          auto dq = dQ.mut_rows(b, h, i0, nr);
          tile(s, b, h, g, i0, nr, j0, nc, &dq, true);
        } else {
          tile<MutRows<T>>(s, b, h, g, i0, nr, j0, nc, nullptr, true);
        }
      }
    }
    dK.mut_rows(b, g, j0, nc) = s.dk.topRows(nc);
    dV.mut_rows(b, g, j0, nc) = s.dv.topRows(nc);
  }
};

template <class T>
void backward_impl(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                   const Tensor& dout, bool causal, T scale, const Tensor& dq, const Tensor& dk, const Tensor& dv,
                   AttentionBackwardSchedule schedule) {
  const Dims d(q, k);
  const bool want_q = dq.defined(), want_kv = dk.defined();
  if (!want_q && !want_kv) return;
  const bool par = d.work() >= kParallelGrain;

  // D_i = rowsum(dO_i ∘ O_i) = Σ_j P_ij dP_ij: the softmax backward's row correction.
  const int64_t rows = d.B * d.T * d.Hq;
  std::vector<T> drow(rows);
  {
    const T* o = out.data<T>();
    const T* g = dout.data<T>();
#pragma omp parallel for if (par)
    for (int64_t row = 0; row < rows; ++row) {  // row = (b, t, h) of the contiguous [B, T, Hq, D]
      const int64_t h = row % d.Hq, t = (row / d.Hq) % d.T, b = row / (d.Hq * d.T);
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t i = 0; i < d.D; ++i) acc += o[row * d.D + i] * g[row * d.D + i];
      drow[(b * d.Hq + h) * d.T + t] = acc;
    }
  }

  const Heads<T> dO(dout), none(dout);  // `none` stands in for outputs that are not wanted (never written)
  const Backward<T> bw{d, Heads<T>(q), Heads<T>(k), Heads<T>(v), dO, want_q ? Heads<T>(dq) : none, lse.data<T>(),
                       drow.data(), scale, causal};
  const Heads<T> dK = want_kv ? Heads<T>(dk) : none, dV = want_kv ? Heads<T>(dv) : none;
  if (want_q) std::fill(dq.data<T>(), dq.data<T>() + dq.numel(), T(0));

#ifdef _OPENMP
  const int64_t threads = omp_get_max_threads();
#else
  const int64_t threads = 1;
#endif
  if (schedule == AttentionBackwardSchedule::automatic)
    schedule = want_q && want_kv && (!par || d.B * d.Hkv >= 2 * threads) ? AttentionBackwardSchedule::fused
                                                                         : AttentionBackwardSchedule::split;
  const int64_t nk = d.blocks(kBk), nq = d.blocks(kBq);

  if (schedule == AttentionBackwardSchedule::fused && want_q && want_kv) {
    // One task per (b, kv head): it alone writes dK, dV of that kv head and dQ of its G query
    // heads, so the accumulation needs no synchronisation.
#pragma omp parallel if (par)
    {
      typename Backward<T>::Scratch s(d.D);
#pragma omp for schedule(dynamic)
      for (int64_t task = 0; task < d.B * d.Hkv; ++task)
        for (int64_t jb = 0; jb < nk; ++jb) bw.key_block(s, task / d.Hkv, task % d.Hkv, jb, true, dK, dV);
    }
    return;
  }
  // Split: dK, dV per (b, kv head, key block); then dQ per (b, q head, query block). P and dP are
  // recomputed in both passes, the price of more independent tasks.
  if (want_kv) {
#pragma omp parallel if (par)
    {
      typename Backward<T>::Scratch s(d.D);
#pragma omp for schedule(dynamic)
      for (int64_t task = 0; task < d.B * d.Hkv * nk; ++task) {
        const int64_t jb = task % nk, g = (task / nk) % d.Hkv, b = task / (nk * d.Hkv);
        bw.key_block(s, b, g, jb, false, dK, dV);
      }
    }
  }
  if (want_q) {
#pragma omp parallel if (par)
    {
      typename Backward<T>::Scratch s(d.D);
#pragma omp for schedule(dynamic)
      for (int64_t task = 0; task < d.B * d.Hq * nq; ++task) {
        const int64_t ib = task % nq, h = (task / nq) % d.Hq, b = task / (nq * d.Hq);
        const int64_t i0 = ib * kBq, nr = std::min(kBq, d.T - i0);
        auto dq_i = bw.dQ.mut_rows(b, h, i0, nr);
        const int64_t jend = causal ? i0 + nr : d.T;
        for (int64_t j0 = 0; j0 < jend; j0 += kBk)
          bw.tile(s, b, h, h / d.G, i0, nr, j0, std::min(kBk, jend - j0), &dq_i, false);
      }
    }
  }
}

}  // namespace

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale,
                       const Tensor& out, const Tensor& lse) {
  dispatch_float(q.dtype(), "attention", [&](auto tag) {
    using T = typename decltype(tag)::type;
    forward_impl<T>(q, k, v, causal, static_cast<T>(scale), out, lse);
  });
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                        const Tensor& dout, bool causal, double scale, const Tensor& dq, const Tensor& dk,
                        const Tensor& dv, AttentionBackwardSchedule schedule) {
  REMOE_CHECK(dk.defined() == dv.defined(), "attention backward: dk and dv are computed together");
  dispatch_float(q.dtype(), "attention backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    backward_impl<T>(q, k, v, out, lse, dout, causal, static_cast<T>(scale), dq, dk, dv, schedule);
  });
}

}  // namespace remoe::cpu
