//===- AtomicFile.h - durable whole-file replacement ------------*- C++ -*-===//
#ifndef QSLAW_SUPPORT_ATOMICFILE_H
#define QSLAW_SUPPORT_ATOMICFILE_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

namespace qslaw {

/// Replaces `path` with `bytes` so that a crash at any point leaves either
/// the old file or the complete new one: write PATH.tmp, fsync it, rename it
/// over PATH, fsync the directory. On failure the temporary is removed and
/// the error names the path and the step that failed.
llvm::Error writeFileAtomically(llvm::StringRef path, llvm::StringRef bytes);
/// The same for the concatenation of `pieces`, without concatenating them
/// in memory (a weights file can be gigabytes). With `bypassCache` the data
/// goes to the disk with O_DIRECT through an aligned staging buffer instead
/// of through the page cache: a gigabyte file written and fsynced that way
/// costs the disk's time only, not also the first touch of a gigabyte of
/// fresh page-cache pages (4x faster on the VMs of docs/performance.md);
/// the first reader then reads it from the disk. Where the file system
/// refuses O_DIRECT (EINVAL, e.g. some FUSE mounts) it is written through the
/// cache as without the flag.
llvm::Error writeFileAtomically(llvm::StringRef path,
                                llvm::ArrayRef<llvm::StringRef> pieces,
                                bool bypassCache = false);

} // namespace qslaw

#endif // QSLAW_SUPPORT_ATOMICFILE_H
