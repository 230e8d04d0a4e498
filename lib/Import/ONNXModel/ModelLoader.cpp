//===- ModelLoader.cpp - ONNX protobuf and tensor data loading ------------===//
#include "qslaw/Import/ONNX/ModelLoader.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>

#include <cstring>

using llvm::Error;
using llvm::Expected;
using llvm::Twine;

namespace qslaw::onnx_import {

static Error err(const Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

Expected<std::unique_ptr<onnx::ModelProto>> loadModel(llvm::StringRef path) {
  // Streamed from the file, not mapped: a mapped copy of the file beside the
  // parsed message doubled the peak memory of a model with inline weights.
  uint64_t size = 0;
  if (std::error_code ec = llvm::sys::fs::file_size(path, size))
    return err(path + ": cannot open: " + ec.message());
  if (llvm::sys::fs::is_directory(path))
    return err(path + ": cannot open: " +
               std::make_error_code(std::errc::is_a_directory).message());
  if (size > uint64_t(INT32_MAX))
    return err(path + ": the protobuf itself is over 2 GB; store the weights "
                      "as external data (onnx.save(..., save_as_external_data=True))");
  auto fd = llvm::sys::fs::openNativeFileForRead(path);
  if (!fd)
    return err(path + ": cannot open: " + llvm::toString(fd.takeError()));
  auto model = std::make_unique<onnx::ModelProto>();
  bool parsed, consumed;
  {
    google::protobuf::io::FileInputStream raw(*fd, /*block_size=*/1 << 20);
    google::protobuf::io::CodedInputStream in(&raw);
    in.SetTotalBytesLimit(INT32_MAX);
    parsed = model->ParseFromCodedStream(&in);
    consumed = in.ConsumedEntireMessage();
  }
  llvm::sys::fs::closeFile(*fd);
  if (!parsed || !consumed)
    return err(path + ": not a valid ONNX model (protobuf parse failed; the "
                      "file is truncated or not ONNX)");
  if (!model->has_graph())
    return err(path + ": ONNX model has no graph");
  return model;
}

unsigned dataTypeBits(int32_t t) {
  using T = onnx::TensorProto;
  switch (t) {
  case T::FLOAT: case T::INT32: case T::UINT32: return 32;
  case T::DOUBLE: case T::INT64: case T::UINT64: return 64;
  case T::FLOAT16: case T::BFLOAT16: case T::INT16: case T::UINT16: return 16;
  case T::INT8: case T::UINT8: case T::BOOL: return 8;
  case 21: case 22: return 4; // UINT4, INT4 (onnx >= 1.16)
  default: return 0;
  }
}

std::string dataTypeName(int32_t t) {
  if (t == 21) return "UINT4";
  if (t == 22) return "INT4";
  if (onnx::TensorProto_DataType_IsValid(t))
    return onnx::TensorProto_DataType_Name(onnx::TensorProto_DataType(t));
  return "data type " + std::to_string(t);
}

int64_t TensorData::numElements() const {
  int64_t n = 1;
  for (int64_t d : dims)
    n *= d;
  return n;
}

template <typename T, typename Src>
static void appendAs(std::vector<char> &out, const Src &vals) {
  for (auto v : vals) {
    T x = static_cast<T>(v);
    const char *p = reinterpret_cast<const char *>(&x);
    out.insert(out.end(), p, p + sizeof(T));
  }
}

static Expected<TensorData> readTensorImpl(const onnx::TensorProto &t,
                                           onnx::TensorProto *owner,
                                           llvm::StringRef modelDir) {
  using TP = onnx::TensorProto;
  TensorData d;
  d.dataType = t.data_type();
  d.dims.assign(t.dims().begin(), t.dims().end());
  std::string name = "initializer '" + t.name() + "'";
  unsigned bits = dataTypeBits(d.dataType);
  if (!bits)
    return err(name + ": unsupported data type " + dataTypeName(d.dataType));
  // The element count and byte size, overflow-checked: dims of 2^40 x 2^40
  // wrapped to 0 bytes, which an empty raw_data then matched.
  int64_t n = 1, storageBits = 0;
  for (int64_t dim : d.dims)
    if (dim < 0)
      return err(name + ": negative dimension " + Twine(dim));
    else if (llvm::MulOverflow(n, dim, n))
      return err(name + ": its dimensions' product overflows 64 bits");
  if (llvm::MulOverflow(n, int64_t(bits), storageBits) ||
      storageBits > (int64_t(1) << 62))
    return err(name + ": " + Twine(n) + " elements are too many to store");
  size_t want = (size_t(storageBits) + 7) / 8;

  if (t.data_location() == TP::EXTERNAL) {
    std::string location;
    uint64_t offset = 0, length = want;
    for (const auto &kv : t.external_data()) {
      uint64_t *field = kv.key() == "offset"   ? &offset
                        : kv.key() == "length" ? &length
                                               : nullptr;
      if (kv.key() == "location")
        location = kv.value();
      else if (field && llvm::StringRef(kv.value()).getAsInteger(10, *field))
        return err(name + ": external data '" + kv.key() +
                   "' is not a non-negative integer: '" + kv.value() + "'");
    }
    if (location.empty())
      return err(name + ": external data without a 'location'");
    llvm::SmallString<256> file(modelDir);
    llvm::sys::path::append(file, location);
    if (length != want)
      return err(name + ": external data 'length' is " + Twine(length) +
                 " bytes, shape and type need " + Twine(uint64_t(want)));
    // A slice past the end would be mapped anyway and fault at first touch
    // (SIGBUS), or, when small, read back zero-filled: check first.
    uint64_t fileSize = 0;
    if (std::error_code ec = llvm::sys::fs::file_size(file, fileSize))
      return err(name + ": cannot read external data file '" + file +
                 "': " + ec.message());
    if (offset > fileSize || length > fileSize - offset)
      return err(name + ": external data [" + Twine(offset) + ", " +
                 Twine(offset + length) + ") runs past the end of '" + file +
                 "' (" + Twine(fileSize) + " bytes)");
    auto buf = llvm::MemoryBuffer::getFileSlice(file, length, offset,
                                                /*IsVolatile=*/false);
    if (!buf)
      return err(name + ": cannot read external data file '" + file +
                 "' (offset " + Twine(offset) + "): " +
                 buf.getError().message());
    llvm::StringRef b = (*buf)->getBuffer();
    if (b.size() != want)
      return err(name + ": external data holds " + Twine(b.size()) +
                 " bytes, shape and type need " + Twine(uint64_t(want)));
    d.bytes = llvm::ArrayRef<char>(b.data(), b.size());
    d.storage = std::shared_ptr<const llvm::MemoryBuffer>(std::move(*buf));
    return d;
  }
  if (t.has_raw_data()) {
    if (t.raw_data().size() != want)
      return err(name + ": raw_data holds " + Twine(t.raw_data().size()) +
                 " bytes, shape " + "and type " + dataTypeName(d.dataType) +
                 " need " + Twine(uint64_t(want)));
    auto s = owner ? std::make_shared<const std::string>(
                         std::move(*owner->mutable_raw_data()))
                   : std::make_shared<const std::string>(t.raw_data());
    if (owner)
      owner->clear_raw_data();
    d.bytes = llvm::ArrayRef<char>(s->data(), s->size());
    d.storage = std::move(s);
    return d;
  }
  auto vec = std::make_shared<std::vector<char>>();
  std::vector<char> &out = *vec;
  // Typed fields.
  auto check = [&](int64_t count) -> Error {
    if (count != n)
      return err(name + ": has " + Twine(count) + " values, shape needs " +
                 Twine(n));
    return Error::success();
  };
  switch (d.dataType) {
  case TP::FLOAT:
    if (Error e = check(t.float_data_size())) return std::move(e);
    appendAs<float>(out, t.float_data());
    break;
  case TP::DOUBLE:
    if (Error e = check(t.double_data_size())) return std::move(e);
    appendAs<double>(out, t.double_data());
    break;
  case TP::INT64:
    if (Error e = check(t.int64_data_size())) return std::move(e);
    appendAs<int64_t>(out, t.int64_data());
    break;
  case TP::INT32:
    if (Error e = check(t.int32_data_size())) return std::move(e);
    appendAs<int32_t>(out, t.int32_data());
    break;
  case TP::INT8: case TP::UINT8: case TP::BOOL:
    if (Error e = check(t.int32_data_size())) return std::move(e);
    appendAs<uint8_t>(out, t.int32_data());
    break;
  case TP::FLOAT16: case TP::BFLOAT16: case TP::INT16: case TP::UINT16:
    if (Error e = check(t.int32_data_size())) return std::move(e);
    appendAs<uint16_t>(out, t.int32_data());
    break;
  case 21: case 22: {
    // int32_data holds two 4-bit values per entry.
    if (t.int32_data_size() != (n + 1) / 2)
      return err(name + ": has " + Twine(t.int32_data_size()) +
                 " packed values, shape needs " + Twine((n + 1) / 2));
    appendAs<uint8_t>(out, t.int32_data());
    break;
  }
  default:
    return err(name + ": no data for type " + dataTypeName(d.dataType));
  }
  d.bytes = llvm::ArrayRef<char>(out.data(), out.size());
  d.storage = std::move(vec);
  return d;
}

Expected<TensorData> readTensor(const onnx::TensorProto &t,
                                llvm::StringRef modelDir) {
  return readTensorImpl(t, nullptr, modelDir);
}

Expected<TensorData> takeTensor(onnx::TensorProto &t,
                                llvm::StringRef modelDir) {
  return readTensorImpl(t, &t, modelDir);
}

} // namespace qslaw::onnx_import
