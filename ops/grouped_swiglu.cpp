// The experts of a dropless MoE layer as one op: rows of x grouped by expert (group e = the next
// group_rows[e] rows), each group through its own SwiGLU FFN,
//   y_e = (silu(x_e·Wg_e) ∘ (x_e·Wu_e))·Wd_e,
// written into one [N, d] output. Composed from slices, matmuls, swiglu and cat (see
// composed::grouped_swiglu), the backward pass would zero-fill and add a full [N, d] gradient per
// expert (a slice's gradient) and sum the gate and up paths' input gradients in separate passes;
// here every expert's GEMMs read and write their block of rows of shared buffers in place:
//   forward   Hg = x_e·Wg_e, Hu = x_e·Wu_e (blocks of [N, w] buffers), A = swiglu(Hg, Hu) in one
//             pass over all rows, y_e = A_e·Wd_e;
//   backward  dA_e = dy_e·Wd_eᵀ, dWd_e = A_eᵀ·dy_e; (dHg, dHu) = swiglu'(Hg, Hu, dA) in one pass;
//             dx_e = dHg_e·Wg_eᵀ + dHu_e·Wu_eᵀ (the second GEMM accumulates), dWg_e = x_eᵀ·dHg_e,
//             dWu_e = x_eᵀ·dHu_e.
// An expert with no rows does no work and gets no gradient (as in PyTorch, where its weights never
// enter the graph).
#include <algorithm>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "ops/common.h"
#include "ops/cpu/elementwise.h"
#include "ops/cpu/matmul.h"
#include "ops/ops.h"

namespace remoe {
namespace {

// Checks the arguments (messages name the op, the expert and the shapes); returns the width w.
int64_t check_grouped_swiglu(const Tensor& x, const std::vector<int64_t>& group_rows, const std::vector<Tensor>& w_gate,
                             const std::vector<Tensor>& w_up, const std::vector<Tensor>& w_down) {
  const char* op = "grouped_swiglu";
  REMOE_CHECK(x.dim() == 2, op, ": x must be [N, d], got ", shape_str(x.shape()));
  const size_t E = group_rows.size();
  REMOE_CHECK(E > 0, op, ": no groups");
  REMOE_CHECK(w_gate.size() == E && w_up.size() == E && w_down.size() == E, op, ": ", E, " groups but ",
              w_gate.size(), " gate, ", w_up.size(), " up and ", w_down.size(), " down weights");
  check_floating(op, x);
  const int64_t d = x.size(1), w = w_gate[0].dim() == 2 ? w_gate[0].size(1) : -1;
  int64_t rows = 0;
  for (size_t e = 0; e < E; ++e) {
    REMOE_CHECK(group_rows[e] >= 0, op, ": group ", e, " has ", group_rows[e], " rows");
    rows += group_rows[e];
    const Shape want_in{d, w}, want_out{w, d};
    REMOE_CHECK(w_gate[e].shape() == want_in && w_up[e].shape() == want_in && w_down[e].shape() == want_out, op,
                ": expert ", e, " has gate ", shape_str(w_gate[e].shape()), ", up ", shape_str(w_up[e].shape()),
                ", down ", shape_str(w_down[e].shape()), "; x ", shape_str(x.shape()), " needs [", d, ", w], [", d,
                ", w], [w, ", d, "] with one w for all experts");
    for (const Tensor* t : {&w_gate[e], &w_up[e], &w_down[e]}) {
      check_same_dtype(op, x, *t);
      common_device(op, {x, *t});
    }
  }
  REMOE_CHECK(rows == x.size(0), op, ": the groups have ", rows, " rows in all, x ", shape_str(x.shape()), " has ",
              x.size(0));
  return w;
}

// Runs fn(e) for every non-empty group e (rows [start[e], start[e + 1])). When there are at least
// as many groups as threads and none holds more than a thread's share of the rows, the groups are
// spread over the threads, largest first, each running its GEMMs single-threaded (a GEMM called
// inside a parallel region does not split itself): for the small per-expert GEMMs of a MoE layer
// this beats splitting every GEMM over the threads. Otherwise (one dominant expert, one thread),
// the groups run one after the other with multi-threaded GEMMs.
template <class F>
void for_each_group(const std::vector<int64_t>& start, F fn) {
  std::vector<int64_t> groups;
  for (size_t e = 0; e + 1 < start.size(); ++e)
    if (start[e + 1] > start[e]) groups.push_back(static_cast<int64_t>(e));
  auto rows = [&start](int64_t e) { return start[e + 1] - start[e]; };
  int threads = 1;
#ifdef _OPENMP
  if (!omp_in_parallel()) threads = omp_get_max_threads();
#endif
  const int64_t total = start.back(), largest = groups.empty() ? 0 : rows(*std::max_element(
      groups.begin(), groups.end(), [&](int64_t a, int64_t b) { return rows(a) < rows(b); }));
  const bool spread = threads > 1 && static_cast<int64_t>(groups.size()) >= threads && largest * threads <= total;
  if (!spread) {
    for (int64_t e : groups) fn(e);
    return;
  }
  std::stable_sort(groups.begin(), groups.end(), [&](int64_t a, int64_t b) { return rows(a) > rows(b); });
  const int64_t n = static_cast<int64_t>(groups.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) fn(groups[i]);
}

}  // namespace

Tensor grouped_swiglu(const Tensor& x_in, const std::vector<int64_t>& group_rows, const std::vector<Tensor>& w_gate,
                      const std::vector<Tensor>& w_up, const std::vector<Tensor>& w_down) {
  const int64_t w = check_grouped_swiglu(x_in, group_rows, w_gate, w_up, w_down);
  require_cpu("grouped_swiglu", x_in.device());
  const int64_t N = x_in.size(0), d = x_in.size(1), E = static_cast<int64_t>(group_rows.size());
  const TensorOptions opt{x_in.dtype(), x_in.device()};
  const Tensor x = contiguous_data(x_in).detach();
  std::vector<int64_t> start(E + 1, 0);  // group e holds rows [start[e], start[e + 1])
  for (int64_t e = 0; e < E; ++e) start[e + 1] = start[e] + group_rows[e];
  auto rows_of = [&start](const Tensor& t, int64_t e) { return slice(t, 0, start[e], start[e + 1]); };

  Tensor hg = empty({N, w}, opt), hu = empty({N, w}, opt), a = empty({N, w}, opt), y = empty({N, d}, opt);
  {
    NoGradGuard no_grad;  // the kernels write into blocks of the buffers; nothing is recorded
    for_each_group(start, [&](int64_t e) {
      cpu::matmul(rows_of(x, e), w_gate[e].detach(), rows_of(hg, e));
      cpu::matmul(rows_of(x, e), w_up[e].detach(), rows_of(hu, e));
    });
    cpu::binary(cpu::BinaryOp::swiglu, hg, hu, a);  // all experts' rows in one pass
    for_each_group(start, [&](int64_t e) { cpu::matmul(rows_of(a, e), w_down[e].detach(), rows_of(y, e)); });
  }

  std::vector<Tensor> inputs{x_in};
  for (const auto* ws : {&w_gate, &w_up, &w_down}) inputs.insert(inputs.end(), ws->begin(), ws->end());
  std::vector<Tensor> wg, wu, wd;  // detached weights for the backward pass
  for (int64_t e = 0; e < E; ++e) {
    wg.push_back(w_gate[e].detach());
    wu.push_back(w_up[e].detach());
    wd.push_back(w_down[e].detach());
  }
  return record("grouped_swiglu", y, inputs,
                [x, hg, hu, a, wg, wu, wd, start, N, d, w, E, opt](const Tensor& g_in, const std::vector<bool>& need)
                    -> std::vector<Tensor> {
                  require_cpu("grouped_swiglu backward", g_in.device());
                  NoGradGuard no_grad;
                  const Tensor g = contiguous_data(g_in);
                  auto rows_of = [&start](const Tensor& t, int64_t e) { return slice(t, 0, start[e], start[e + 1]); };
                  auto need_w = [&need, E](int which, int64_t e) { return need[1 + which * E + e]; };
                  // Output buffers are allocated before the (possibly parallel) group loops.
                  std::vector<Tensor> grads(1 + 3 * E);
                  for (int which : {0, 1, 2})
                    for (int64_t e = 0; e < E; ++e)
                      if (start[e + 1] > start[e] && need_w(which, e))
                        grads[1 + which * E + e] = empty(which == 2 ? Shape{w, d} : Shape{d, w}, opt);
                  Tensor da = empty({N, w}, opt);
                  for_each_group(start, [&](int64_t e) {
                    cpu::matmul(rows_of(g, e), transpose(wd[e], 0, 1), rows_of(da, e));
                    if (need_w(2, e)) cpu::matmul(transpose(rows_of(a, e), 0, 1), rows_of(g, e), grads[1 + 2 * E + e]);
                  });
                  Tensor dhg = empty({N, w}, opt), dhu = empty({N, w}, opt);
                  cpu::swiglu_backward(hg, hu, da, dhg, dhu);  // all experts' rows in one pass
                  Tensor dx = need[0] ? empty({N, d}, opt) : Tensor();
                  for_each_group(start, [&](int64_t e) {
                    if (need[0]) {
                      cpu::matmul(rows_of(dhg, e), transpose(wg[e], 0, 1), rows_of(dx, e));
                      cpu::matmul(rows_of(dhu, e), transpose(wu[e], 0, 1), rows_of(dx, e), /*accumulate=*/true);
                    }
                    for (int which : {0, 1})
                      if (need_w(which, e))
                        cpu::matmul(transpose(rows_of(x, e), 0, 1), rows_of(which == 0 ? dhg : dhu, e),
                                    grads[1 + which * E + e]);
                  });
                  grads[0] = dx;
                  return grads;
                });
}

namespace composed {

// The same from basic ops: a slice per group, the SwiGLU FFN, cat (the oracle of the fused op).
Tensor grouped_swiglu(const Tensor& x, const std::vector<int64_t>& group_rows, const std::vector<Tensor>& w_gate,
                      const std::vector<Tensor>& w_up, const std::vector<Tensor>& w_down) {
  check_grouped_swiglu(x, group_rows, w_gate, w_up, w_down);
  std::vector<Tensor> blocks;
  int64_t offset = 0;
  for (size_t e = 0; e < group_rows.size(); ++e) {
    if (group_rows[e] == 0) continue;
    Tensor xe = slice(x, 0, offset, offset + group_rows[e]);
    blocks.push_back(matmul(composed::swiglu(matmul(xe, w_gate[e]), matmul(xe, w_up[e])), w_down[e]));
    offset += group_rows[e];
  }
  if (blocks.empty()) return zeros({0, x.size(1)}, {x.dtype(), x.device()});
  return blocks.size() == 1 ? blocks[0] : cat(blocks, 0);
}

}  // namespace composed
}  // namespace remoe
