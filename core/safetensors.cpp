#include "core/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

namespace remoe {
namespace {

// Tensor bytes are copied as they are in memory; the format is little-endian.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

// A header larger than this is certainly corrupt (the reference implementation's limit).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::bf16: return "BF16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::u8: return "U8";
  }
  return "?";
}

bool parse_safetensors_dtype(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> kNames[] = {{"F32", DType::f32}, {"F64", DType::f64},
                                                         {"BF16", DType::bf16}, {"I32", DType::i32},
                                                         {"I64", DType::i64}, {"U8", DType::u8}};
  for (const auto& [name, t] : kNames)
    if (s == name) {
      *out = t;
      return true;
    }
  return false;
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

}  // namespace

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const SafetensorsMetadata& metadata) {
  const char* op = "save_safetensors";
  // Contiguous CPU copies (or the tensors themselves when already so) and the header, in order.
  std::vector<Tensor> data;
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    REMOE_CHECK(t.defined(), op, ": ", path, ": tensor '", name, "' is undefined");
    REMOE_CHECK(name != "__metadata__", op, ": ", path, ": '__metadata__' is reserved and cannot name a tensor");
    REMOE_CHECK(seen.insert(name).second, op, ": ", path, ": tensor name '", name, "' appears twice");
    Tensor c = t.device().is_cpu() ? contiguous_data(t) : t.to(Device::cpu());
    const uint64_t nbytes = uint64_t(c.numel()) * c.element_size();
    header[name] = {{"dtype", safetensors_dtype_name(c.dtype())},
                    {"shape", c.shape()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    data.push_back(std::move(c));
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // e.g. a name that is not valid UTF-8
    fail(op, ": ", path, ": cannot encode the header: ", e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // pad so that the data starts 8-byte aligned
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));

  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    REMOE_CHECK(f.good(), op, ": cannot open ", tmp, " for writing");
    f.write(reinterpret_cast<const char*>(len), 8);
    f.write(text.data(), std::streamsize(text.size()));
    for (const Tensor& c : data)
      if (c.numel() > 0) f.write(static_cast<const char*>(c.raw_data()), std::streamsize(c.numel() * c.element_size()));
    f.flush();
    if (!f.good()) {
      f.close();
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      fail(op, ": writing ", tmp, " failed (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    fail(op, ": cannot rename ", tmp, " to ", path, ": ", ec.message());
  }
}

namespace {

// A safetensors file opened for reading: its stream, header (parsed JSON) and data-buffer extent.
struct OpenedFile {
  std::ifstream f;
  nlohmann::json header;
  uint64_t header_len = 0, data_size = 0;
};

constexpr const char* kLoadOp = "load_safetensors";

// Reads the 8-byte little-endian header length and the JSON header, checking both against the
// file's size.
OpenedFile open_safetensors(const std::string& path) {
  const char* op = kLoadOp;
  OpenedFile o;
  o.f.open(path, std::ios::binary);
  REMOE_CHECK(o.f.good(), op, ": cannot open ", path);
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  REMOE_CHECK(!ec, op, ": cannot read the size of ", path, ": ", ec.message());
  REMOE_CHECK(file_size >= 8, op, ": ", path, ": file too short (", file_size, " bytes) to hold the 8-byte header length");
  unsigned char len[8];
  o.f.read(reinterpret_cast<char*>(len), 8);
  REMOE_CHECK(o.f.good(), op, ": ", path, ": cannot read the header length");
  for (int i = 0; i < 8; ++i) o.header_len |= uint64_t(len[i]) << (8 * i);
  REMOE_CHECK(o.header_len <= file_size - 8, op, ": ", path, ": header length ", o.header_len,
              " is beyond the end of the file (", file_size, " bytes)");
  REMOE_CHECK(o.header_len <= kMaxHeaderBytes, op, ": ", path, ": header length ", o.header_len, " is implausibly large");
  std::string text(o.header_len, '\0');
  o.f.read(text.data(), std::streamsize(o.header_len));
  REMOE_CHECK(o.f.good(), op, ": ", path, ": cannot read the ", o.header_len, "-byte header");
  try {
    o.header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail(op, ": ", path, ": the header is not valid JSON: ", e.what());
  }
  REMOE_CHECK(o.header.is_object(), op, ": ", path, ": the header is not a JSON object");
  o.data_size = file_size - 8 - o.header_len;
  return o;
}

void read_metadata(const nlohmann::json& e, const std::string& path, SafetensorsMetadata* metadata) {
  REMOE_CHECK(e.is_object(), kLoadOp, ": ", path, ": __metadata__ must be an object of strings, got ", e.dump());
  for (const auto& [k, v] : e.items()) {
    REMOE_CHECK(v.is_string(), kLoadOp, ": ", path, ": __metadata__ value of '", k, "' must be a string, got ", v.dump());
    if (metadata) (*metadata)[k] = v.get<std::string>();
  }
}

// One tensor's header entry, validated: dtype known, shape of non-negative integers whose byte
// count does not overflow, data_offsets spanning exactly that many bytes inside the data buffer.
Entry parse_entry(const std::string& name, const nlohmann::json& e, const std::string& path, uint64_t data_size) {
  const char* op = kLoadOp;
  // Non-negative integers parse as number_unsigned; anything else in a shape or offset is corrupt.
  auto as_u64 = [&](const nlohmann::json& v, const char* what) -> uint64_t {
    REMOE_CHECK(v.is_number_unsigned(), op, ": ", path, ": tensor '", name, "': ", what,
                " must hold non-negative integers, got ", v.dump());
    return v.get<uint64_t>();
  };
  REMOE_CHECK(e.is_object(), op, ": ", path, ": tensor '", name, "': entry must be an object, got ", e.dump());
  REMOE_CHECK(e.contains("dtype") && e.contains("shape") && e.contains("data_offsets"), op, ": ", path, ": tensor '",
              name, "': entry needs dtype, shape and data_offsets, got ", e.dump());
  const auto& jd = e["dtype"];
  const auto& js = e["shape"];
  const auto& jo = e["data_offsets"];
  Entry en;
  en.name = name;
  REMOE_CHECK(jd.is_string(), op, ": ", path, ": tensor '", name, "': dtype must be a string, got ", jd.dump());
  REMOE_CHECK(parse_safetensors_dtype(jd.get<std::string>(), &en.dtype), op, ": ", path, ": tensor '", name,
              "': unknown or unsupported dtype ", jd.dump(), " (supported: F32, F64, BF16, I32, I64, U8)");
  REMOE_CHECK(js.is_array(), op, ": ", path, ": tensor '", name, "': shape must be an array, got ", js.dump());
  uint64_t nbytes = dtype_size(en.dtype);  // numel·size, guarding against overflow from absurd shapes
  for (const auto& d : js) {
    uint64_t n = as_u64(d, "shape");
    REMOE_CHECK(n <= uint64_t(std::numeric_limits<int64_t>::max()), op, ": ", path, ": tensor '", name, "': shape ",
                js.dump(), " is too large");
    en.shape.push_back(int64_t(n));
    REMOE_CHECK(!__builtin_mul_overflow(nbytes, n, &nbytes), op, ": ", path, ": tensor '", name, "': shape ",
                js.dump(), " is too large");
  }
  REMOE_CHECK(jo.is_array() && jo.size() == 2, op, ": ", path, ": tensor '", name,
              "': data_offsets must be [begin, end], got ", jo.dump());
  en.begin = as_u64(jo[0], "data_offsets");
  en.end = as_u64(jo[1], "data_offsets");
  REMOE_CHECK(en.begin <= en.end && en.end - en.begin == nbytes, op, ": ", path, ": tensor '", name, "': data_offsets ",
              jo.dump(), " span ", en.begin <= en.end ? en.end - en.begin : 0, " bytes but dtype ",
              jd.get<std::string>(), " and shape ", shape_str(en.shape), " need ", nbytes);
  REMOE_CHECK(en.end <= data_size, op, ": ", path, ": tensor '", name, "': data_offsets ", jo.dump(),
              " lie beyond the data buffer (", data_size, " bytes)");
  return en;
}

// The tensors must tile the data buffer exactly: no overlaps, no gaps, no trailing bytes.
void check_tiling(std::vector<Entry>& entries, uint64_t data_size, const std::string& path) {
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t pos = 0;
  for (const Entry& en : entries) {
    REMOE_CHECK(en.begin == pos, kLoadOp, ": ", path, ": tensor '", en.name, "': data_offsets [", en.begin, ", ", en.end,
                "] ", en.begin < pos ? "overlap the previous tensor" : "leave a gap after the previous tensor",
                " (which ends at ", pos, ")");
    pos = en.end;
  }
  REMOE_CHECK(pos == data_size, kLoadOp, ": ", path, ": the data buffer has ", data_size, " bytes but the tensors cover ",
              pos);
}

}  // namespace

std::map<std::string, Tensor> load_safetensors(const std::string& path, SafetensorsMetadata* metadata) {
  OpenedFile o = open_safetensors(path);
  std::vector<Entry> entries;
  if (metadata) metadata->clear();
  for (const auto& [name, e] : o.header.items()) {
    if (name == "__metadata__") {
      read_metadata(e, path, metadata);
      continue;
    }
    entries.push_back(parse_entry(name, e, path, o.data_size));
  }
  check_tiling(entries, o.data_size, path);
  std::map<std::string, Tensor> out;
  for (const Entry& en : entries) {
    Tensor t = empty(en.shape, {en.dtype});
    const uint64_t nbytes = en.end - en.begin;
    if (nbytes > 0) {
      o.f.seekg(std::streamoff(8 + o.header_len + en.begin));
      o.f.read(static_cast<char*>(t.raw_data()), std::streamsize(nbytes));
      REMOE_CHECK(o.f.good(), kLoadOp, ": ", path, ": cannot read the data of tensor '", en.name, "'");
    }
    out.emplace(en.name, std::move(t));
  }
  return out;
}

}  // namespace remoe
