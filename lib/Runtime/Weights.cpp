//===- Weights.cpp - map a library's external weights file ----------------===//
//
// A library compiled with --weights=external reads its large constants
// through the exported pointer `qslaw_weights_base`. Loading it maps
// LIBRARY.weights read-only (page cache shared between processes), checks
// it against the size and hash the library was compiled with, and sets the
// pointer. Loads of one library share the mapping; the last model freed
// unmaps it.
//
//===----------------------------------------------------------------------===//
#include "RuntimeInternal.h"
#include "qslaw/Support/WeightsFile.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"

#include <cerrno>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using qslaw::runtime::fail;

namespace {
struct Mapping {
  void *addr = nullptr;
  size_t size = 0;
  void **base = nullptr;
  int users = 0;
};
std::mutex mappingsMutex;
std::map<void *, Mapping> mappings; // by dlopen handle

std::string libraryPath(const void *symbol, bool mainProgram) {
  if (mainProgram)
    return llvm::sys::fs::getMainExecutable(nullptr,
                                            const_cast<void *>(symbol));
  Dl_info info;
  if (!dladdr(symbol, &info) || !info.dli_fname)
    return {};
  return info.dli_fname;
}
} // namespace

qslaw_status qslaw::runtime::bindWeights(qslaw_model *m,
                                         const WeightsRecord &w,
                                         const void *signatureSymbol,
                                         bool mainProgram,
                                         const char *weightsPath) {
  const std::string &file = w.file, &hash = w.xxh3;
  const int64_t dataBytes = w.dataBytes;
  std::lock_guard<std::mutex> lock(mappingsMutex);
  if (auto it = mappings.find(m->handle); it != mappings.end()) {
    ++it->second.users;
    m->weightsBound = true;
    return QSLAW_OK;
  }
  std::string lib = libraryPath(signatureSymbol, mainProgram);
  if (lib.empty())
    return fail(QSLAW_ERROR_IO, "cannot find where the model library was "
                                "loaded from (to open its weights file " +
                                    file + ")");
  std::string path = weightsPath ? std::string(weightsPath)
                                 : lib.substr(0, lib.rfind('/') + 1) +
                                       file;
  auto ioError = [&](const std::string &what) {
    return fail(QSLAW_ERROR_IO,
                path + ": " + what + ": " + std::strerror(errno) +
                    " (the weights file of " + lib +
                    ", written by qslaw-compile --weights=external" +
                    (weightsPath ? ")" : "; keep it beside the library)"));
  };
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return ioError("cannot open");
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return ioError("cannot stat");
  }
  size_t size = size_t(st.st_size);
  void *addr = size ? mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0)
                    : MAP_FAILED;
  close(fd);
  if (addr == MAP_FAILED)
    return size ? ioError("cannot map")
                : fail(QSLAW_ERROR_IO, path + ": the weights file is empty");
  auto unmapAndFail = [&](const std::string &msg) {
    munmap(addr, size);
    return fail(QSLAW_ERROR_IO, msg);
  };
  llvm::StringRef bytes(static_cast<const char *>(addr), size);
  auto header = qslaw::weights::parseHeader(path, bytes, size);
  if (!header)
    return unmapAndFail(llvm::toString(header.takeError()));
  if (header->hash != hash || header->dataBytes != uint64_t(dataBytes))
    return unmapAndFail(
        path + ": this weights file belongs to another compile (data " +
        std::to_string(header->dataBytes) + " bytes, xxh3 " + header->hash +
        "; " + lib + " expects " + std::to_string(dataBytes) +
        " bytes, xxh3 " + hash + ")");
  llvm::StringRef data = bytes.substr(header->dataOffset, header->dataBytes);
  if (std::string actual = qslaw::weights::hashData(data); actual != hash)
    return unmapAndFail(path + ": the weights data is corrupt (xxh3 " +
                        actual + ", its header and the library say " +
                        hash + ")");
  auto **base = static_cast<void **>(dlsym(m->handle, "qslaw_weights_base"));
  if (!base)
    return unmapAndFail(lib + ": the signature names a weights file but the "
                              "library does not export qslaw_weights_base");
  *base = const_cast<char *>(data.data());
  mappings[m->handle] = Mapping{addr, size, base, 1};
  m->weightsBound = true;
  return QSLAW_OK;
}

void qslaw::runtime::releaseWeights(qslaw_model *m) {
  if (!m->weightsBound)
    return;
  std::lock_guard<std::mutex> lock(mappingsMutex);
  auto it = mappings.find(m->handle);
  if (it == mappings.end() || --it->second.users > 0)
    return;
  // Code that still ran would now fault instead of reading stale data.
  *it->second.base = nullptr;
  munmap(it->second.addr, it->second.size);
  mappings.erase(it);
  m->weightsBound = false;
}
