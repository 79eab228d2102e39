// Element types. Floating ops compute in f32/f64; bf16 is a storage type (convert with to(f32))
// whose rounding is round-to-nearest-even, as on GPUs.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "core/error.h"

#if defined(__CUDACC__)
#define REMOE_HD __host__ __device__
#else
#define REMOE_HD
#endif

namespace remoe {

enum class DType : uint8_t { f32, f64, bf16, i32, i64, u8 };

// bfloat16: the upper 16 bits of an IEEE f32.
struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  REMOE_HD explicit bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep it a quiet NaN
      bits = static_cast<uint16_t>((u >> 16) | 0x40u);
    } else {  // round to nearest, ties to even
      uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
      bits = static_cast<uint16_t>((u + rounding) >> 16);
    }
  }
  REMOE_HD explicit operator float() const {
    uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::bf16: return 2;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::u8: return 1;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
  }
  return "?";
}

inline bool is_floating(DType t) { return t == DType::f32 || t == DType::f64 || t == DType::bf16; }

// The C++ type <-> DType map, used by Tensor::data<T>() to check the element type.
template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<bf16>() { return DType::bf16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::u8; }

// Calls f(type_tag<T>{}) with T the C++ type of `t` (all six dtypes).
template <class T>
struct type_tag {
  using type = T;
};
template <class F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(type_tag<float>{});
    case DType::f64: return f(type_tag<double>{});
    case DType::bf16: return f(type_tag<bf16>{});
    case DType::i32: return f(type_tag<int32_t>{});
    case DType::i64: return f(type_tag<int64_t>{});
    case DType::u8: return f(type_tag<uint8_t>{});
  }
  fail("visit_dtype: invalid dtype");
}

// Value conversion between element types (bf16 goes through f32).
template <class To, class From>
REMOE_HD inline To convert(From v) {
  if constexpr (std::is_same_v<From, bf16>) {
    return convert<To>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, bf16>) {
    return bf16(static_cast<float>(v));
  } else {
    return static_cast<To>(v);
  }
}

// Calls f(type_tag<T>{}) for the floating compute types f32 and f64; any other dtype throws an
// error naming `op` (bf16 is a storage type: convert with to(DType::f32)).
template <class F>
decltype(auto) dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: return f(type_tag<float>{});
    case DType::f64: return f(type_tag<double>{});
    default: fail(op, ": dtype ", dtype_name(t), " is not supported (f32 and f64 are); convert with to(DType::f32)");
  }
}

// As dispatch_float, plus the integer types i32, i64 and u8.
template <class F>
decltype(auto) dispatch_numeric(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: return f(type_tag<float>{});
    case DType::f64: return f(type_tag<double>{});
    case DType::i32: return f(type_tag<int32_t>{});
    case DType::i64: return f(type_tag<int64_t>{});
    case DType::u8: return f(type_tag<uint8_t>{});
    default: fail(op, ": dtype ", dtype_name(t), " is not supported");
  }
}

}  // namespace remoe
