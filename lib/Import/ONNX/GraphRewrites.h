//===- GraphRewrites.h - protobuf-level rewrites before import --*- C++ -*-===//
#ifndef QSLAW_LIB_IMPORT_ONNX_GRAPHREWRITES_H
#define QSLAW_LIB_IMPORT_ONNX_GRAPHREWRITES_H

#include "onnx/onnx_pb.h"

namespace qslaw::onnx_import {
/// ScatterND(d, Transpose(NonZero(m)), Slice(src, ...)) -> qslaw.MaskedScatter
/// (d, m, src). Returns how many were rewritten.
int rewriteMaskedScatter(onnx::GraphProto &graph);
/// Drops nodes none of whose outputs is used.
void removeDeadNodes(onnx::GraphProto &graph);
} // namespace qslaw::onnx_import

#endif
