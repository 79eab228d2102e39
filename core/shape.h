// Shapes and strides (in elements, row-major), and the broadcasting rule (NumPy's).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace remoe {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);                  // "[2, 3]"
int64_t shape_numel(const Shape& s);                    // product; 1 for a scalar
Shape contiguous_strides(const Shape& s);               // row-major strides
// The broadcast of two shapes; throws naming `op` and both shapes if they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Maps a possibly negative axis into [0, ndim); throws naming `op` if out of range.
int64_t normalize_dim(int64_t dim, int64_t ndim, const char* op);

}  // namespace remoe
