// f32 GEMM with bfloat16 inputs and f32 accumulation, through oneDNN's matmul (its AVX512-BF16
// kernels), for matmul_precision() == bf16 (ops/ops.h). Built only with oneDNN (REMOE_WITH_DNNL).
#pragma once
#include <cstdint>
#include <string>

namespace remoe::cpu {

// Whether bf16 GEMMs can run here: built with oneDNN and the CPU has AVX512-BF16 (oneDNN's own
// ISA check, so ONEDNN_MAX_CPU_ISA is honoured). Otherwise `why` says what is missing.
bool bf16_gemm_supported(std::string* why = nullptr);

// c (m×n, row-major, ld n) = a (m×k) @ b (k×n), or += with `acc`; a and b as matmul.cpp's Layout:
// element (i, j) at i·ld + j when row_major, else i + j·ld. Each input is rounded to bf16 (nearest
// even) into a per-thread buffer first; the products and their sums are f32.
void gemm_bf16(const float* a, bool a_row_major, int64_t lda, const float* b, bool b_row_major, int64_t ldb, float* c,
               int64_t m, int64_t k, int64_t n, bool acc);

}  // namespace remoe::cpu
