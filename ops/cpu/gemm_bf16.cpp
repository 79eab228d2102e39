#include "ops/cpu/gemm_bf16.h"

#include <vector>

#include "core/dtype.h"
#include "core/error.h"

#ifdef REMOE_WITH_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace remoe::cpu {

#ifdef REMOE_WITH_DNNL
namespace {

using Tag = dnnl::memory::format_tag;
using DT = dnnl::memory::data_type;

// A rows×cols f32 matrix (element (i, j) at i·ld + j, or i + j·ld when column-major) as dense bf16
// in the same orientation: `lines` lines of `len` elements (rows of a row-major matrix, columns of
// a column-major one).
void to_bf16_dense(const float* src, bool row_major, int64_t ld, int64_t rows, int64_t cols, std::vector<bf16>& dst) {
  const int64_t lines = row_major ? rows : cols, len = row_major ? cols : rows;
  if (static_cast<int64_t>(dst.size()) < lines * len) dst.resize(static_cast<size_t>(lines * len));
  bf16* out = dst.data();
#pragma omp parallel for schedule(static) if (lines * len > (1 << 16))
  for (int64_t l = 0; l < lines; ++l)
    for (int64_t i = 0; i < len; ++i) out[l * len + i] = bf16(src[l * ld + i]);  // nearest even (core/dtype.h)
}

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine = [] {
    // Each new (shape, layout) costs ~0.4 ms to generate and ~4 us once cached; ReMoE's expert
    // blocks change their row counts every step, so keep many (oneDNN's default is 1024).
    dnnl::set_primitive_cache_capacity(16384);
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return engine;
}

}  // namespace

bool bf16_gemm_supported(std::string* why) {
  // The ISA values are nested bit sets: AVX512-BF16 includes every bit of avx512_core_bf16.
  const auto have = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto need = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  if ((have & need) == need) return true;
  if (why) *why = "this CPU has no AVX512-BF16 (oneDNN's effective ISA is below avx512_core_bf16)";
  return false;
}

void gemm_bf16(const float* a, bool a_row_major, int64_t lda, const float* b, bool b_row_major, int64_t ldb, float* c,
               int64_t m, int64_t k, int64_t n, bool acc) {
  thread_local std::vector<bf16> a16, b16;
  to_bf16_dense(a, a_row_major, lda, m, k, a16);
  to_bf16_dense(b, b_row_major, ldb, k, n, b16);
  const dnnl::engine& engine = cpu_engine();
  const dnnl::memory::desc a_md({m, k}, DT::bf16, a_row_major ? Tag::ab : Tag::ba);
  const dnnl::memory::desc b_md({k, n}, DT::bf16, b_row_major ? Tag::ab : Tag::ba);
  const dnnl::memory::desc c_md({m, n}, DT::f32, Tag::ab);
  dnnl::primitive_attr attr;
  if (acc) {  // c += a·b: the sum post-op adds the product to what c holds
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, engine);
  const dnnl::matmul product(pd);  // from oneDNN's primitive cache after the first time
  thread_local dnnl::stream stream(engine);
  dnnl::memory am(a_md, engine, a16.data()), bm(b_md, engine, b16.data()), cm(c_md, engine, c);
  product.execute(stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
  stream.wait();
}

#else  // built without oneDNN

bool bf16_gemm_supported(std::string* why) {
  if (why) *why = "remoe was built without oneDNN (apt-get install libdnnl-dev, then reconfigure)";
  return false;
}

void gemm_bf16(const float*, bool, int64_t, const float*, bool, int64_t, float*, int64_t, int64_t, int64_t, bool) {
  REMOE_CHECK(false, "matmul: bf16 GEMMs need oneDNN, and this build has none");
}

#endif

}  // namespace remoe::cpu
