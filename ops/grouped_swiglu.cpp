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
#include "ops/composed_vjp.h"
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

// Part `part` of `parts` near-equal slices of n items: [begin, end).
struct Range {
  int64_t begin, end;
};
Range part_of(int64_t n, int64_t part, int64_t parts) { return {n * part / parts, n * (part + 1) / parts}; }

// Runs fn(e, part, parts) for every non-empty group e and part = 0..parts-1; each call does its
// slice of group e's work (fn picks the dimension: token rows for x·W, weight rows for xᵀ·dH).
// With several threads the calls are spread over them, largest first, each running its GEMMs
// single-threaded (a GEMM called inside a parallel region does not split itself): for the small
// per-expert GEMMs of a MoE layer this beats splitting every GEMM over the threads. A group with
// more than a thread's share of all rows is cut into parts of about that share, so that one busy
// expert (ReMoE's loads are uneven) does not leave the other threads idle.
template <class F>
void for_each_group_part(const std::vector<int64_t>& start, F fn) {
  struct Task {
    int64_t group, part, parts, rows;
  };
  int threads = 1;
#ifdef _OPENMP
  if (!omp_in_parallel()) threads = omp_get_max_threads();
#endif
  const int64_t total = start.back(), share = std::max<int64_t>(1, (total + threads - 1) / threads);
  std::vector<Task> tasks;
  for (size_t e = 0; e + 1 < start.size(); ++e) {
    const int64_t rows = start[e + 1] - start[e];
    if (rows == 0) continue;  // an expert with no rows does no work
    const int64_t parts = threads > 1 ? (rows + share - 1) / share : 1;
    for (int64_t p = 0; p < parts; ++p) tasks.push_back({static_cast<int64_t>(e), p, parts, rows / parts});
  }
  if (threads == 1 || static_cast<int64_t>(tasks.size()) < threads) {  // nothing to spread
    for (const Task& t : tasks) fn(t.group, t.part, t.parts);
    return;
  }
  std::stable_sort(tasks.begin(), tasks.end(), [](const Task& a, const Task& b) { return a.rows > b.rows; });
  const int64_t n = static_cast<int64_t>(tasks.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) fn(tasks[i].group, tasks[i].part, tasks[i].parts);
}

// What the backward pass needs: the input, the forward's buffers, the detached weights, the groups.
struct GroupedSwigluSaved {
  Tensor x, hg, hu, a;
  std::vector<Tensor> wg, wu, wd;
  std::vector<int64_t> start;  // group e holds rows [start[e], start[e + 1])
  int64_t N, d, w, E;
  TensorOptions opt;

  // Token rows of part `part` of `parts` of group e.
  Tensor rows(const Tensor& t, int64_t e, int64_t part = 0, int64_t parts = 1) const {
    const Range r = part_of(start[e + 1] - start[e], part, parts);
    return slice(t, 0, start[e] + r.begin, start[e] + r.end);
  }
};

// dA_e = dy_e·Wd_eᵀ and dWd_e = A_eᵀ·dy_e (split over Wd's rows); swiglu'; dx_e = dHg_e·Wg_eᵀ +
// dHu_e·Wu_eᵀ and dW{g,u}_e = x_eᵀ·dH{g,u}_e (split over their rows, i.e. x's columns).
std::vector<Tensor> grouped_swiglu_backward(const GroupedSwigluSaved& s, const Tensor& g_in, const std::vector<bool>& need) {
  require_cpu("grouped_swiglu backward", g_in.device());
  NoGradGuard no_grad;
  const Tensor g = contiguous_data(g_in);
  const int64_t E = s.E;
  auto need_w = [&need, E](int which, int64_t e) { return need[1 + which * E + e]; };
  // Output buffers are allocated before the (possibly parallel) group loops.
  std::vector<Tensor> grads(1 + 3 * E);
  for (int which : {0, 1, 2})
    for (int64_t e = 0; e < E; ++e)
      if (s.start[e + 1] > s.start[e] && need_w(which, e))
        grads[1 + which * E + e] = empty(which == 2 ? Shape{s.w, s.d} : Shape{s.d, s.w}, s.opt);
  Tensor da = empty({s.N, s.w}, s.opt);
  for_each_group_part(s.start, [&](int64_t e, int64_t p, int64_t parts) {
    cpu::matmul(s.rows(g, e, p, parts), transpose(s.wd[e], 0, 1), s.rows(da, e, p, parts));
    if (!need_w(2, e)) return;
    const Range r = part_of(s.w, p, parts);
    cpu::matmul(transpose(slice(s.rows(s.a, e), 1, r.begin, r.end), 0, 1), s.rows(g, e),
                slice(grads[1 + 2 * E + e], 0, r.begin, r.end));
  });
  Tensor dhg = empty({s.N, s.w}, s.opt), dhu = empty({s.N, s.w}, s.opt);
  cpu::swiglu_backward(s.hg, s.hu, da, dhg, dhu);  // all experts' rows in one pass
  Tensor dx = need[0] ? empty({s.N, s.d}, s.opt) : Tensor();
  for_each_group_part(s.start, [&](int64_t e, int64_t p, int64_t parts) {
    if (need[0]) {
      cpu::matmul(s.rows(dhg, e, p, parts), transpose(s.wg[e], 0, 1), s.rows(dx, e, p, parts));
      cpu::matmul(s.rows(dhu, e, p, parts), transpose(s.wu[e], 0, 1), s.rows(dx, e, p, parts), /*accumulate=*/true);
    }
    const Range r = part_of(s.d, p, parts);
    for (int which : {0, 1})
      if (need_w(which, e))
        cpu::matmul(transpose(slice(s.rows(s.x, e), 1, r.begin, r.end), 0, 1), s.rows(which == 0 ? dhg : dhu, e),
                    slice(grads[1 + which * E + e], 0, r.begin, r.end));
  });
  grads[0] = dx;
  return grads;
}

}  // namespace

Tensor grouped_swiglu(const Tensor& x_in, const std::vector<int64_t>& group_rows, const std::vector<Tensor>& w_gate,
                      const std::vector<Tensor>& w_up, const std::vector<Tensor>& w_down) {
  const int64_t w = check_grouped_swiglu(x_in, group_rows, w_gate, w_up, w_down);
  require_cpu("grouped_swiglu", x_in.device());
  const int64_t N = x_in.size(0), d = x_in.size(1), E = static_cast<int64_t>(group_rows.size());
  const TensorOptions opt{x_in.dtype(), x_in.device()};
  auto s = std::make_shared<GroupedSwigluSaved>();
  s->x = contiguous_data(x_in).detach();
  s->start.assign(E + 1, 0);
  for (int64_t e = 0; e < E; ++e) s->start[e + 1] = s->start[e] + group_rows[e];
  s->N = N, s->d = d, s->w = w, s->E = E, s->opt = opt;
  for (int64_t e = 0; e < E; ++e) {  // detached weights for the backward pass
    s->wg.push_back(w_gate[e].detach());
    s->wu.push_back(w_up[e].detach());
    s->wd.push_back(w_down[e].detach());
  }

  s->hg = empty({N, w}, opt), s->hu = empty({N, w}, opt), s->a = empty({N, w}, opt);
  Tensor y = empty({N, d}, opt);
  {
    NoGradGuard no_grad;  // the kernels write into blocks of the buffers; nothing is recorded
    for_each_group_part(s->start, [&](int64_t e, int64_t p, int64_t parts) {
      cpu::matmul(s->rows(s->x, e, p, parts), s->wg[e], s->rows(s->hg, e, p, parts));
      cpu::matmul(s->rows(s->x, e, p, parts), s->wu[e], s->rows(s->hu, e, p, parts));
    });
    cpu::binary(BinaryOp::swiglu, s->hg, s->hu, s->a);  // all experts' rows in one pass
    for_each_group_part(s->start, [&](int64_t e, int64_t p, int64_t parts) {
      cpu::matmul(s->rows(s->a, e, p, parts), s->wd[e], s->rows(y, e, p, parts));
    });
  }

  std::vector<Tensor> inputs{x_in};
  for (const auto* ws : {&w_gate, &w_up, &w_down}) inputs.insert(inputs.end(), ws->begin(), ws->end());
  return record("grouped_swiglu", y, inputs, [s, inputs, group_rows](const Tensor& g, const std::vector<bool>& need) {
    if (grad_enabled())  // create_graph: a recorded gradient, through the composed formula
      return composed_vjp([group_rows](const std::vector<Tensor>& in) {
        const auto E = static_cast<std::ptrdiff_t>(group_rows.size());
        auto part = [&](std::ptrdiff_t i) { return std::vector<Tensor>(in.begin() + 1 + i * E, in.begin() + 1 + (i + 1) * E); };
        return composed::grouped_swiglu(in[0], group_rows, part(0), part(1), part(2));
      }, inputs, g, need);
    return grouped_swiglu_backward(*s, g, need);
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
