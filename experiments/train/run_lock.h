// One writer per run directory: `remoe train` and `remoe eval` hold an exclusive flock(2) on
// `<run>/lock` for as long as they write into the run. The kernel releases the lock when the
// process exits, however it exits (kill -9 included), so a stale lock never blocks a restart.
// The file holds the holder's pid, so the refusal can say who holds it.
#pragma once
#include <filesystem>
#include <string>

namespace remoe::experiments {

class RunDirLock {
 public:
  // Creates `run_dir` if needed and locks it, or throws remoe::Error naming the directory and the
  // pid of the process that holds it. `what` ("remoe train", "remoe eval") goes into the message.
  static RunDirLock acquire(const std::filesystem::path& run_dir, const std::string& what);
  RunDirLock(RunDirLock&& other) noexcept;
  RunDirLock& operator=(RunDirLock&&) = delete;
  RunDirLock(const RunDirLock&) = delete;
  ~RunDirLock();

  static constexpr const char* kFileName = "lock";

 private:
  explicit RunDirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace remoe::experiments
