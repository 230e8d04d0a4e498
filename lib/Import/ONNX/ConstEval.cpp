//===- ConstEval.cpp - import-time evaluation of constant subgraphs -------===//
#include "ConstEval.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Matchers.h"

using namespace mlir;

namespace qslaw::onnx_import {

bool allInputsConstant(const NodeContext &nc) {
  bool any = false;
  for (unsigned i = 0; i < nc.inputs.size(); ++i) {
    if (!nc.inputs[i])
      continue;
    if (!nc.isConstant(i))
      return false;
    any = true;
  }
  return any;
}

Scalar scalarAt(DenseElementsAttr a, int64_t i) {
  if (a.isSplat())
    i = 0;
  Type t = a.getElementType();
  if (isa<FloatType>(t))
    return Scalar::ofFloat(
        (*(a.getValues<APFloat>().begin() + i)).convertToDouble());
  APInt v = *(a.getValues<APInt>().begin() + i);
  return Scalar::ofInt(t.isInteger(1) ? int64_t(v.getZExtValue())
                                      : v.getSExtValue());
}

DenseElementsAttr makeConstant(RankedTensorType type, ArrayRef<Scalar> values) {
  Type t = type.getElementType();
  if (auto ft = dyn_cast<FloatType>(t)) {
    SmallVector<APFloat> v;
    for (const Scalar &s : values) {
      APFloat x(s.isFloat ? s.f : double(s.i));
      bool lost;
      x.convert(ft.getFloatSemantics(), APFloat::rmNearestTiesToEven, &lost);
      v.push_back(x);
    }
    return DenseElementsAttr::get(type, v);
  }
  unsigned w = t.getIntOrFloatBitWidth();
  SmallVector<APInt> v;
  for (const Scalar &s : values) {
    int64_t x = s.isFloat ? int64_t(s.f) : s.i;
    v.push_back(w == 1 ? APInt(1, x != 0) : APInt(w, uint64_t(x), true));
  }
  return DenseElementsAttr::get(type, v);
}

DenseElementsAttr foldElementwise(ArrayRef<DenseElementsAttr> ins,
                                  ArrayRef<int64_t> shape, Type outElem,
                                  const ScalarEval &fn) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  if (n > kMaxFoldElements)
    return {};
  size_t rank = shape.size();
  // Per-input strides over the broadcast output index space.
  SmallVector<SmallVector<int64_t>> strides;
  for (DenseElementsAttr a : ins) {
    auto t = cast<RankedTensorType>(a.getType());
    SmallVector<int64_t> s(rank, 0);
    int64_t st = 1;
    for (int64_t d = t.getRank() - 1; d >= 0; --d) {
      size_t od = rank - t.getRank() + d;
      s[od] = t.getDimSize(d) == 1 ? 0 : st;
      st *= t.getDimSize(d);
    }
    strides.push_back(s);
  }
  SmallVector<Scalar> out;
  out.reserve(n);
  SmallVector<int64_t> idx(rank, 0);
  SmallVector<Scalar> args(ins.size());
  for (int64_t flat = 0; flat < n; ++flat) {
    for (size_t k = 0; k < ins.size(); ++k) {
      int64_t off = 0;
      for (size_t d = 0; d < rank; ++d)
        off += idx[d] * strides[k][d];
      args[k] = scalarAt(ins[k], off);
    }
    out.push_back(fn(args));
    for (int64_t d = int64_t(rank) - 1; d >= 0; --d) {
      if (++idx[d] < shape[d])
        break;
      idx[d] = 0;
    }
  }
  return makeConstant(RankedTensorType::get(shape, outElem), out);
}

Value materialize(NodeContext &nc, DenseElementsAttr value) {
  return arith::ConstantOp::create(nc.b, nc.loc, value);
}

} // namespace qslaw::onnx_import
