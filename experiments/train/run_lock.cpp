#include "experiments/train/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace remoe::experiments {
namespace fs = std::filesystem;

namespace {

// The pid the holder wrote into the lock file ("unknown" when it has not written it yet).
std::string holder_pid(int fd) {
  char buffer[32] = {};
  const ssize_t n = ::pread(fd, buffer, sizeof buffer - 1, 0);
  std::string text = n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text.empty() ? "unknown" : text;
}

}  // namespace

RunDirLock RunDirLock::acquire(const fs::path& run_dir, const std::string& what) {
  fs::create_directories(run_dir);
  const fs::path file = run_dir / kFileName;
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  REMOE_CHECK(fd >= 0, what, ": cannot open the run's lock file ", file.string(), ": ", std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string pid = holder_pid(fd);
    ::close(fd);
    REMOE_CHECK(err != EWOULDBLOCK, what, ": run directory ", run_dir.string(), " is in use by process ", pid,
                " (it holds ", file.string(), "); one process at a time trains or evaluates a run: wait for it "
                "to finish, or stop it");
    fail(what, ": cannot lock ", file.string(), ": ", std::strerror(err));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    fail(what, ": cannot write the pid into ", file.string(), ": ", why);
  }
  return RunDirLock(fd);
}

RunDirLock::RunDirLock(RunDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace remoe::experiments
