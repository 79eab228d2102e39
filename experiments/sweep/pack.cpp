#include "experiments/sweep/pack.h"

#include <unistd.h>

#include <cstdlib>

#include "core/error.h"

namespace remoe::experiments {
namespace fs = std::filesystem;

namespace {

// A scratch directory removed at scope exit (also when tar fails).
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    path = fs::temp_directory_path() / ("remoe_pack_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

}  // namespace

std::string shell_quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

bool is_pack_archive(const fs::path& path) {
  const std::string s = path.string();
  auto ends = [&](const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends(".tar.gz") || ends(".tgz");
}

std::vector<fs::path> packed_files(const fs::path& run_dir) {
  std::vector<fs::path> out;
  for (const char* name : {"sweep_point.json", "config.toml", "run.json", "summary.json", "metrics.jsonl", "eval.json"})
    if (fs::exists(run_dir / name)) out.push_back(run_dir / name);
  return out;
}

void pack_runs(const std::vector<fs::path>& run_dirs, const std::string& top, const fs::path& archive,
               const fs::path& index_file) {
  REMOE_CHECK(!run_dirs.empty(), "sweep --pack: no run directories to pack into ", archive.string());
  REMOE_CHECK(is_pack_archive(archive), "sweep --pack: ", archive.string(), " must end in .tar.gz or .tgz");
  ScratchDir scratch;
  for (const fs::path& run : run_dirs) {
    const fs::path to = scratch.path / top / run.filename();
    fs::create_directories(to);
    for (const fs::path& file : packed_files(run)) fs::copy_file(file, to / file.filename());
  }
  if (!index_file.empty()) fs::copy_file(index_file, scratch.path / top / "sweep.json");
  if (!archive.parent_path().empty()) fs::create_directories(archive.parent_path());
  const fs::path tmp = archive.string() + ".tmp";
  // Sorted names, fixed owner and mtime: the same runs give the same archive bytes.
  const std::string cmd = "tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -czf " +
                          shell_quoted(fs::absolute(tmp).string()) + " -C " + shell_quoted(scratch.path.string()) + " " +
                          shell_quoted(top);
  REMOE_CHECK(std::system(cmd.c_str()) == 0, "sweep --pack: tar failed writing ", archive.string(), " (", cmd, ")");
  fs::rename(tmp, archive);
}

fs::path unpack_archive(const fs::path& archive, const fs::path& dest) {
  REMOE_CHECK(fs::exists(archive), "report: archive not found: ", archive.string());
  fs::create_directories(dest);
  const std::string cmd = "tar -xzf " + shell_quoted(archive.string()) + " -C " + shell_quoted(dest.string());
  REMOE_CHECK(std::system(cmd.c_str()) == 0, "report: tar could not extract ", archive.string());
  return dest;
}

}  // namespace remoe::experiments
