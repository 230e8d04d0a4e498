//===- AtomicFile.cpp - durable whole-file replacement --------------------===//
#include "qslaw/Support/AtomicFile.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <fcntl.h>
#include <unistd.h>

namespace qslaw {

llvm::Error writeFileAtomically(llvm::StringRef path, llvm::StringRef bytes) {
  return writeFileAtomically(path, llvm::ArrayRef<llvm::StringRef>(bytes));
}

namespace {
/// Writes all of `n` bytes at the file position; false (errno set) on error.
bool writeAll(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      if (w == 0)
        errno = EIO;
      return false;
    }
    p += w;
    n -= size_t(w);
  }
  return true;
}

/// O_DIRECT wants whole blocks from block-aligned memory at block-aligned
/// file offsets; 4096 covers the logical block sizes in use.
constexpr size_t kDirectBlock = 4096;
constexpr size_t kDirectStage = size_t(8) << 20;

/// Streams `pieces` through an aligned staging buffer to `fd` (opened with
/// O_DIRECT), padding the last block and truncating the file to its size.
/// False with errno set; EINVAL when the file system refuses direct I/O.
bool writeDirect(int fd, llvm::ArrayRef<llvm::StringRef> pieces) {
  std::unique_ptr<char, decltype(&std::free)> stage(
      static_cast<char *>(std::aligned_alloc(kDirectBlock, kDirectStage)),
      &std::free);
  if (!stage) {
    errno = ENOMEM;
    return false;
  }
  size_t fill = 0, total = 0;
  for (llvm::StringRef bytes : pieces) {
    total += bytes.size();
    while (!bytes.empty()) {
      size_t n = std::min(bytes.size(), kDirectStage - fill);
      std::memcpy(stage.get() + fill, bytes.data(), n);
      fill += n;
      bytes = bytes.drop_front(n);
      if (fill == kDirectStage) {
        if (!writeAll(fd, stage.get(), fill))
          return false;
        fill = 0;
      }
    }
  }
  if (fill > 0) {
    size_t padded = llvm::alignTo(fill, kDirectBlock);
    std::memset(stage.get() + fill, 0, padded - fill);
    if (!writeAll(fd, stage.get(), padded))
      return false;
  }
  return ::ftruncate(fd, off_t(total)) == 0;
}
} // namespace

llvm::Error writeFileAtomically(llvm::StringRef path,
                                llvm::ArrayRef<llvm::StringRef> pieces,
                                bool bypassCache) {
  std::string tmp = (path + ".tmp").str();
  auto fail = [&](const char *what) {
    int e = errno;
    ::unlink(tmp.c_str());
    return llvm::createStringError(std::error_code(e, std::generic_category()),
                                   llvm::Twine(path) + ": " + what + ": " +
                                       std::strerror(e));
  };
  int fd = -1;
  if (bypassCache) {
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0644);
    if (fd >= 0 && !writeDirect(fd, pieces)) {
      int e = errno;
      ::close(fd);
      fd = -1;
      if (e != EINVAL) {
        errno = e;
        return fail("write failed");
      }
    } else if (fd < 0 && errno != EINVAL) {
      return fail("cannot write");
    }
  }
  if (fd < 0) { // through the page cache (also where O_DIRECT is refused)
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
      return fail("cannot write");
    for (llvm::StringRef bytes : pieces)
      if (!writeAll(fd, bytes.data(), bytes.size())) {
        int e = errno;
        ::close(fd);
        errno = e;
        return fail("write failed");
      }
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    return fail("fsync failed");
  }
  if (::close(fd) != 0)
    return fail("close failed");
  if (::rename(tmp.c_str(), path.str().c_str()) != 0)
    return fail("rename failed");
  // The rename itself is durable only once the directory is synced.
  llvm::SmallString<256> dir(path);
  llvm::sys::path::remove_filename(dir);
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return llvm::Error::success();
}

} // namespace qslaw
