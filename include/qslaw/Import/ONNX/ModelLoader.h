//===- ModelLoader.h - ONNX protobuf and tensor data loading ----*- C++ -*-===//
#ifndef QSLAW_IMPORT_ONNX_MODELLOADER_H
#define QSLAW_IMPORT_ONNX_MODELLOADER_H

#include "onnx/onnx_pb.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <string>
#include <vector>

namespace qslaw::onnx_import {

/// Parses `path` (no 2 GB protobuf limit).
llvm::Expected<std::unique_ptr<onnx::ModelProto>> loadModel(llvm::StringRef path);

/// The bytes of a tensor's data, little-endian, one element per
/// `elementBytes` (sub-byte types packed as stored), from raw_data, the typed
/// fields, or the external file it names (relative to `modelDir`). Errors
/// name the tensor and what disagrees.
///
/// `bytes` views `storage`, which the caller may keep as long as it needs
/// the data: external data is the mapped file slice (not read), raw_data a
/// copy, or, from takeTensor, the proto's own string moved out.
struct TensorData {
  int32_t dataType;
  std::vector<int64_t> dims;
  llvm::ArrayRef<char> bytes;
  std::shared_ptr<const void> storage;
  int64_t numElements() const;
};
llvm::Expected<TensorData> readTensor(const onnx::TensorProto &t,
                                      llvm::StringRef modelDir);
/// readTensor without a copy of raw_data: the proto's raw_data moves into
/// the result's storage (the proto is left without it).
llvm::Expected<TensorData> takeTensor(onnx::TensorProto &t,
                                      llvm::StringRef modelDir);

/// Storage bits per element of an ONNX data type (0 if unsupported).
unsigned dataTypeBits(int32_t dataType);
/// "FLOAT", "INT4", ...
std::string dataTypeName(int32_t dataType);

} // namespace qslaw::onnx_import

#endif
