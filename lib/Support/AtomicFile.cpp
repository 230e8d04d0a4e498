//===- AtomicFile.cpp - durable whole-file replacement --------------------===//
#include "qslaw/Support/AtomicFile.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Path.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace qslaw {

llvm::Error writeFileAtomically(llvm::StringRef path, llvm::StringRef bytes) {
  return writeFileAtomically(path, llvm::ArrayRef<llvm::StringRef>(bytes));
}

llvm::Error writeFileAtomically(llvm::StringRef path,
                                llvm::ArrayRef<llvm::StringRef> pieces) {
  std::string tmp = (path + ".tmp").str();
  auto fail = [&](const char *what) {
    int e = errno;
    ::unlink(tmp.c_str());
    return llvm::createStringError(std::error_code(e, std::generic_category()),
                                   llvm::Twine(path) + ": " + what + ": " +
                                       std::strerror(e));
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0)
    return fail("cannot write");
  for (llvm::StringRef bytes : pieces) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t w = ::write(fd, bytes.data() + off, bytes.size() - off);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0) {
        ::close(fd);
        return fail("write failed");
      }
      off += size_t(w);
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
