//===- GpuObjectContainer.h - several GPU objects in one blob ---*- C++ -*-===//
//
// MLIR's `gpu.binary` can hold one object per target (sm_80, sm_90a, ...),
// but the LLVM translation embeds one of them, chosen at compile time.
// qslaw-gpu-pack-objects packs them all into this container instead, and the
// CUDA runtime picks the object for the device it finds at load time.
//
//   "QSLAWGPU" | u32 version (1) | u32 count |
//   count × { u32 chip length | chip | u64 size | bytes }   (little endian)
//
// Header-only and dependency-free: the compiler and the runtime share it.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_RUNTIME_GPUOBJECTCONTAINER_H
#define QSLAW_RUNTIME_GPUOBJECTCONTAINER_H

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace qslaw::gpu {

inline constexpr char kContainerMagic[8] = {'Q', 'S', 'L', 'A',
                                            'W', 'G', 'P', 'U'};

struct GpuObject {
  std::string chip;  ///< e.g. "sm_90a"
  const char *data;  ///< into the container (decode) or the caller's bytes
  uint64_t size;
};

inline void appendU32(std::string &out, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(char((v >> (8 * i)) & 0xff));
}
inline void appendU64(std::string &out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(char((v >> (8 * i)) & 0xff));
}

inline std::string encodeContainer(const std::vector<GpuObject> &objects) {
  std::string out(kContainerMagic, sizeof(kContainerMagic));
  appendU32(out, 1);
  appendU32(out, uint32_t(objects.size()));
  for (const GpuObject &o : objects) {
    appendU32(out, uint32_t(o.chip.size()));
    out += o.chip;
    appendU64(out, o.size);
    out.append(o.data, o.size);
  }
  return out;
}

inline bool isContainer(const void *data, size_t size) {
  return size >= 16 && std::memcmp(data, kContainerMagic, 8) == 0;
}

/// Decodes `data`; false on a malformed container (truncated, bad version).
inline bool decodeContainer(const void *data, size_t size,
                            std::vector<GpuObject> &objects) {
  const auto *p = static_cast<const unsigned char *>(data);
  size_t pos = 8;
  auto u = [&](int bytes, uint64_t &v) {
    if (pos + bytes > size)
      return false;
    v = 0;
    for (int i = 0; i < bytes; ++i)
      v |= uint64_t(p[pos + i]) << (8 * i);
    pos += bytes;
    return true;
  };
  uint64_t version, count;
  if (!isContainer(data, size) || !u(4, version) || version != 1 ||
      !u(4, count))
    return false;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t len, n;
    if (!u(4, len) || pos + len > size)
      return false;
    std::string chip(reinterpret_cast<const char *>(p + pos), len);
    pos += len;
    if (!u(8, n) || pos + n > size)
      return false;
    objects.push_back({chip, reinterpret_cast<const char *>(p + pos), n});
    pos += n;
  }
  return true;
}

/// "sm_90a" -> 90, "sm_80" -> 80; -1 if not of that form.
inline int chipComputeCapability(const std::string &chip) {
  if (chip.rfind("sm_", 0) != 0)
    return -1;
  int v = 0, digits = 0;
  for (size_t i = 3; i < chip.size() && chip[i] >= '0' && chip[i] <= '9'; ++i)
    v = v * 10 + (chip[i] - '0'), ++digits;
  return digits ? v : -1;
}

/// Objects to try on a device of compute capability `cc` (e.g. 90), best
/// first: exact architecture (the `a` variant first), then lower ones
/// (their embedded PTX is JIT-compiled by the driver), highest first.
inline std::vector<GpuObject> rankForDevice(std::vector<GpuObject> objects,
                                            int cc) {
  std::vector<GpuObject> out;
  auto score = [&](const GpuObject &o) {
    int c = chipComputeCapability(o.chip);
    if (c < 0 || c > cc)
      return -1;
    bool archSpecific = !o.chip.empty() && o.chip.back() == 'a';
    if (archSpecific && c != cc)
      return -1; // sm_90a code runs on sm_90 only
    return c * 2 + (archSpecific ? 1 : 0);
  };
  for (const GpuObject &o : objects)
    if (score(o) >= 0)
      out.push_back(o);
  std::stable_sort(out.begin(), out.end(),
                   [&](const GpuObject &a, const GpuObject &b) {
                     return score(a) > score(b);
                   });
  return out;
}

} // namespace qslaw::gpu

#endif // QSLAW_RUNTIME_GPUOBJECTCONTAINER_H
