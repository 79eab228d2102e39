// Compact sweep results: one tar.gz holding, per run, the files a report needs (config.toml,
// run.json, summary.json, metrics.jsonl, eval.json, sweep_point.json) and no checkpoints, so that
// a sweep run elsewhere can be brought back and reported (`remoe report ARCHIVE`).
#pragma once
#include <filesystem>
#include <vector>

namespace remoe::experiments {

// The files of a run directory that travel in a pack (those that exist).
std::vector<std::filesystem::path> packed_files(const std::filesystem::path& run_dir);

// Writes `archive` (tar.gz, via `tar`) with <top>/<run name>/<file> for every run directory and
// <top>/sweep.json (the sweep index, when given). Runs reached through a symlink are copied as
// files under their name here. Throws naming the archive when tar fails.
void pack_runs(const std::vector<std::filesystem::path>& run_dirs, const std::string& top,
               const std::filesystem::path& archive, const std::filesystem::path& index_file = {});

// Extracts an archive written by pack_runs into `dest` (created); returns `dest`.
std::filesystem::path unpack_archive(const std::filesystem::path& archive, const std::filesystem::path& dest);

// True for names that pack_runs writes (".tar.gz" / ".tgz").
bool is_pack_archive(const std::filesystem::path& path);

// "'text'" with embedded quotes escaped, for a /bin/sh command line.
std::string shell_quoted(const std::string& text);

}  // namespace remoe::experiments
