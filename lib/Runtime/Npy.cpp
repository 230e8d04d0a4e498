//===- Npy.cpp - NumPy .npy reader and writer ------------------------------===//
#include "qslaw/Runtime/Npy.h"
#include "qslaw/Support/AtomicFile.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;

namespace qslaw {

size_t npyDtypeSize(StringRef dtype) {
  if (dtype.size() < 2)
    return 0;
  char kind = dtype[0];
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
    return 0;
  unsigned size;
  if (dtype.drop_front().getAsInteger(10, size) ||
      (size != 1 && size != 2 && size != 4 && size != 8))
    return 0;
  return size;
}

int64_t NpyArray::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

size_t NpyArray::elementSize() const { return npyDtypeSize(dtype); }

static Error npyError(StringRef path, const Twine &msg) {
  return createStringError(inconvertibleErrorCode(),
                           Twine(path) + ": not a readable .npy file: " + msg);
}

/// Value of `'key': value` in the header dict (value up to the next ',' or
/// ')' at depth 0).
static std::optional<StringRef> headerField(StringRef header, StringRef key) {
  std::string quoted = ("'" + key + "'").str();
  size_t pos = header.find(quoted);
  if (pos == StringRef::npos)
    return std::nullopt;
  StringRef rest = header.drop_front(pos + quoted.size()).ltrim();
  if (!rest.consume_front(":"))
    return std::nullopt;
  rest = rest.ltrim();
  if (rest.starts_with("(")) {
    size_t close = rest.find(')');
    return close == StringRef::npos ? std::nullopt
                                    : std::optional(rest.take_front(close + 1));
  }
  size_t end = rest.find_first_of(",}");
  return rest.take_front(end).trim();
}

Expected<NpyArray> readNpy(StringRef path) {
  ErrorOr<std::unique_ptr<MemoryBuffer>> buf = MemoryBuffer::getFile(path);
  if (!buf)
    return createStringError(buf.getError(),
                             Twine(path) + ": cannot open: " +
                                 buf.getError().message());
  return parseNpy((*buf)->getBuffer(), path);
}

Expected<NpyArray> parseNpy(StringRef bytes, StringRef path) {
  if (bytes.size() < 10 || !bytes.starts_with("\x93NUMPY"))
    return npyError(path, "missing the \\x93NUMPY magic");
  unsigned major = uint8_t(bytes[6]);
  size_t headerLen, headerStart;
  if (major == 1) {
    headerLen = uint8_t(bytes[8]) | (uint8_t(bytes[9]) << 8);
    headerStart = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12)
      return npyError(path, "truncated header");
    headerLen = uint32_t(uint8_t(bytes[8])) | (uint32_t(uint8_t(bytes[9])) << 8) |
                (uint32_t(uint8_t(bytes[10])) << 16) |
                (uint32_t(uint8_t(bytes[11])) << 24);
    headerStart = 12;
  } else {
    return npyError(path, "unsupported format version " + Twine(major));
  }
  if (bytes.size() < headerStart + headerLen)
    return npyError(path, "truncated header");
  StringRef header = bytes.substr(headerStart, headerLen);
  auto descr = headerField(header, "descr");
  auto order = headerField(header, "fortran_order");
  auto shape = headerField(header, "shape");
  if (!descr || !order || !shape)
    return npyError(path, "header lacks descr, fortran_order or shape");
  if (*order != "False")
    return npyError(path, "Fortran-ordered arrays are not supported");
  StringRef d = descr->trim("'\"");
  NpyArray arr;
  if (d.size() >= 3 && (d[0] == '<' || d[0] == '|' || d[0] == '='))
    d = d.drop_front();
  else if (!d.empty() && d[0] == '>')
    return npyError(path, "big-endian dtype '" + d + "' is not supported");
  arr.dtype = d.str();
  if (npyDtypeSize(arr.dtype) == 0)
    return npyError(path, "unsupported dtype '" + d + "'");
  SmallVector<StringRef> dims;
  shape->trim("()").split(dims, ',', -1, /*KeepEmpty=*/false);
  // The byte count, overflow-checked (found by fuzz_npy: a shape whose
  // product overflows int64).
  int64_t want = int64_t(arr.elementSize());
  for (StringRef dim : dims) {
    int64_t v;
    if (dim.trim().getAsInteger(10, v) || v < 0)
      return npyError(path, "bad shape " + *shape);
    if (llvm::MulOverflow(want, v, want))
      return npyError(path, "shape " + *shape + " overflows 64-bit sizes");
    arr.shape.push_back(v);
  }
  StringRef payload = bytes.drop_front(headerStart + headerLen);
  if (payload.size() != uint64_t(want))
    return npyError(path, "payload has " + Twine(payload.size()) +
                              " bytes, shape and dtype need " + Twine(want));
  arr.data.assign(payload.begin(), payload.end());
  return arr;
}

Error writeNpy(StringRef path, const NpyArray &a) {
  std::string header = "{'descr': '";
  header += (a.elementSize() == 1 ? "|" : "<") + a.dtype +
            "', 'fortran_order': False, 'shape': (";
  for (int64_t d : a.shape)
    header += std::to_string(d) + ", ";
  if (a.shape.size() > 1)
    header.resize(header.size() - 1);
  else if (a.shape.size() == 1)
    header.pop_back(); // "(n,)"
  header += "), }";
  // Pad so that the data starts 64-byte aligned; the header ends in '\n'.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += char(1);
  bytes += char(0);
  bytes += char(header.size() & 0xff);
  bytes += char((header.size() >> 8) & 0xff);
  bytes += header;
  bytes.append(reinterpret_cast<const char *>(a.data.data()), a.data.size());
  return writeFileAtomically(path, bytes);
}

std::string npyDtypeFor(llvm::StringRef dt) {
  if (dt == "f32") return "f4";
  if (dt == "f16") return "f2";
  if (dt == "f64") return "f8";
  if (dt == "i64") return "i8";
  if (dt == "i32") return "i4";
  if (dt == "i16") return "i2";
  if (dt == "i1") return "b1";
  if (dt == "bf16") return "u2";
  return "u1";
}

bool npyDtypeMatches(llvm::StringRef dt, llvm::StringRef npy) {
  if (dt == "i1")
    return npy == "b1" || npy == "u1" || npy == "i1";
  std::string want = npyDtypeFor(dt);
  if (want[0] == 'f' || dt == "bf16")
    return npy == want;
  // Integers: either signedness of the same width.
  return npy.size() == want.size() && npy.drop_front() == llvm::StringRef(want).drop_front() &&
         (npy[0] == 'i' || npy[0] == 'u');
}

} // namespace qslaw
