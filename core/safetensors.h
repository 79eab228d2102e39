// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
//   8 bytes   little-endian u64 N, the header's length
//   N bytes   JSON object: name -> {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
//             plus an optional "__metadata__": {string: string}; padded with spaces
//   the rest  the tensors' bytes, row-major little-endian; offsets are relative to this buffer
// Supported dtypes: F32, F64, BF16, I32, I64, U8 (remoe's six). The loader rejects anything
// malformed with a remoe::Error naming the file and the problem.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace remoe {

using SafetensorsMetadata = std::map<std::string, std::string>;

// Writes `tensors` (any device, any strides; names unique, not "__metadata__") in the given
// order to path + ".tmp", then renames it to `path`, so a crash never leaves a half-written file.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const SafetensorsMetadata& metadata = {});

// Reads every tensor of the file into contiguous CPU tensors; fills *metadata with the header's
// "__metadata__" map (empty when absent) if metadata is not null.
std::map<std::string, Tensor> load_safetensors(const std::string& path, SafetensorsMetadata* metadata = nullptr);

}  // namespace remoe
