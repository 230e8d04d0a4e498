//===- LinalgBuilders.cpp - tensor-level building blocks ------------------===//
#include "LinalgBuilders.h"
#include "qslaw/Dialect/QSLAW/Utils/ConstantData.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"

using namespace mlir;

namespace qslaw::onnx_import {

std::optional<SmallVector<int64_t>>
broadcastShapes(ArrayRef<ArrayRef<int64_t>> shapes) {
  size_t rank = 0;
  for (auto s : shapes)
    rank = std::max(rank, s.size());
  SmallVector<int64_t> out(rank, 1);
  for (auto s : shapes)
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t &o = out[rank - s.size() + i];
      int64_t d = s[i];
      if (d == 1)
        continue;
      if (o != 1 && o != d)
        return std::nullopt;
      o = d;
    }
  return out;
}

Value buildElementwise(OpBuilder &b, Location loc, ValueRange ins,
                       ArrayRef<int64_t> shape, Type resultElem, BodyFn body) {
  MLIRContext *ctx = b.getContext();
  unsigned rank = shape.size();
  SmallVector<AffineMap> maps;
  SmallVector<Value> operands(ins);
  for (Value &v : operands) {
    auto ty = cast<RankedTensorType>(v.getType());
    // An input that does not broadcast to `shape` is an error (the importer
    // fails the node); a placeholder of the result's shape keeps the IR
    // valid meanwhile: MLIR's verifier crashes on some invalid maps.
    bool fits = ty.getRank() <= int64_t(rank);
    for (int64_t i = 0; fits && i < ty.getRank(); ++i) {
      int64_t d = ty.getDimSize(i), o = shape[rank - ty.getRank() + i];
      fits = d == 1 || d == o;
    }
    if (!fits) {
      std::string dims;
      for (int64_t x : shape)
        dims += (dims.empty() ? "" : ", ") + std::to_string(x);
      emitError(loc) << "an input of type " << ty
                     << " does not broadcast to the result shape [" << dims
                     << "]";
      v = tensor::EmptyOp::create(b, loc, shape, ty.getElementType());
      ty = cast<RankedTensorType>(v.getType());
    }
    SmallVector<AffineExpr> exprs;
    unsigned off = rank - ty.getRank();
    for (unsigned i = 0; i < ty.getRank(); ++i)
      exprs.push_back(ty.getDimSize(i) == 1 && shape[off + i] != 1
                          ? getAffineConstantExpr(0, ctx)
                          : getAffineDimExpr(off + i, ctx));
    maps.push_back(AffineMap::get(rank, 0, exprs, ctx));
  }
  maps.push_back(AffineMap::getMultiDimIdentityMap(rank, ctx));
  Value out = tensor::EmptyOp::create(b, loc, shape, resultElem);
  SmallVector<utils::IteratorType> its(rank, utils::IteratorType::parallel);
  return linalg::GenericOp::create(
             b, loc, out.getType(), operands, out, maps, its,
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               linalg::YieldOp::create(nb, nl, body(nb, nl, args.drop_back()));
             })
      .getResult(0);
}

Value buildReduction(OpBuilder &b, Location loc, Value in,
                     ArrayRef<int64_t> axes, bool keepDims, TypedAttr init,
                     BodyFn body) {
  MLIRContext *ctx = b.getContext();
  auto ty = cast<RankedTensorType>(in.getType());
  unsigned rank = ty.getRank();
  SmallVector<int64_t> outShape;
  SmallVector<AffineExpr> outExprs;
  SmallVector<utils::IteratorType> its;
  for (unsigned i = 0; i < rank; ++i) {
    bool red = llvm::is_contained(axes, int64_t(i));
    its.push_back(red ? utils::IteratorType::reduction
                      : utils::IteratorType::parallel);
    if (!red) {
      outShape.push_back(ty.getDimSize(i));
      outExprs.push_back(getAffineDimExpr(i, ctx));
    } else if (keepDims) {
      outShape.push_back(1);
      outExprs.push_back(getAffineConstantExpr(0, ctx));
    }
  }
  Value empty = tensor::EmptyOp::create(b, loc, outShape, ty.getElementType());
  Value c = arith::ConstantOp::create(b, loc, init);
  Value acc = linalg::FillOp::create(b, loc, c, empty).getResult(0);
  SmallVector<AffineMap> maps{AffineMap::getMultiDimIdentityMap(rank, ctx),
                              AffineMap::get(rank, 0, outExprs, ctx)};
  return linalg::GenericOp::create(
             b, loc, acc.getType(), in, acc, maps, its,
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               linalg::YieldOp::create(nb, nl,
                                       body(nb, nl, {args[1], args[0]}));
             })
      .getResult(0);
}

Value buildReshape(OpBuilder &b, Location loc, Value in,
                   ArrayRef<int64_t> shape) {
  auto ty = cast<RankedTensorType>(in.getType());
  if (ty.getShape() == shape)
    return in;
  // Reshaping a constant is a constant (shape chains fold at import).
  ElementsAttr e;
  if (mlir::qslaw::matchConstantTensor(in, e) &&
      (e.isSplat() || e.getNumElements() <= (1 << 16)))
    if (DenseElementsAttr c = mlir::qslaw::toDenseElements(e))
      return arith::ConstantOp::create(
          b, loc, c.reshape(RankedTensorType::get(shape, ty.getElementType())));
  // To and from rank 0 (every dimension is 1): one op with no
  // reassociation groups (an expand_shape to rank 0 is invalid IR).
  auto target = RankedTensorType::get(shape, ty.getElementType());
  if (shape.empty())
    return tensor::CollapseShapeOp::create(b, loc, target, in,
                                           ArrayRef<ReassociationIndices>{});
  if (ty.getRank() == 0)
    return tensor::ExpandShapeOp::create(b, loc, target, in,
                                         ArrayRef<ReassociationIndices>{});
  Value flat = in;
  if (ty.getRank() != 1) {
    SmallVector<ReassociationIndices> all(1);
    for (int64_t i = 0; i < ty.getRank(); ++i)
      all[0].push_back(i);
    flat = tensor::CollapseShapeOp::create(b, loc, in, all);
  }
  if (shape.size() == 1)
    return flat;
  SmallVector<ReassociationIndices> all(1);
  for (size_t i = 0; i < shape.size(); ++i)
    all[0].push_back(i);
  return tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get(shape, ty.getElementType()), flat, all);
}

Value scalarConst(OpBuilder &b, Location loc, Type elem, double v) {
  if (isa<FloatType>(elem))
    return arith::ConstantOp::create(b, loc, b.getFloatAttr(elem, v));
  return arith::ConstantOp::create(b, loc, b.getIntegerAttr(elem, int64_t(v)));
}

} // namespace qslaw::onnx_import
