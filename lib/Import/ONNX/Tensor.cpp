//===- Tensor.cpp - Gather, Concat, Slice, Expand, Range, masks -----------===//
#include "LinalgBuilders.h"
#include "ConstEval.h"
#include "qslaw/Dialect/QSLAW/Utils/MaskedScan.h"
#include "qslaw/Import/ONNX/ModelLoader.h"
#include "NodeContext.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;

namespace qslaw::onnx_import {
namespace {

int64_t normAxis(int64_t a, int64_t rank) { return a < 0 ? a + rank : a; }

/// When input `i` of a Gather is a graph input, records on the function
/// that its values must lie in [-extent, extent): the compiled gather reads
/// whatever address an index gives, so the runtime checks graph inputs
/// against this range before running (`qslaw.index_ranges`, one entry per
/// input name; an input feeding several gathers gets the narrowest range).
void recordIndexRange(NodeContext &nc, unsigned i, int64_t extent,
                      int64_t axis) {
  auto arg = dyn_cast<BlockArgument>(nc.input(i));
  auto func = arg ? dyn_cast<func::FuncOp>(arg.getOwner()->getParentOp())
                  : func::FuncOp();
  auto names = func ? func->getAttrOfType<ArrayAttr>("qslaw.inputs") : ArrayAttr();
  if (!names || arg.getArgNumber() >= names.size())
    return;
  StringRef name = cast<StringAttr>(names[arg.getArgNumber()]).getValue();
  MLIRContext *ctx = func.getContext();
  NamedAttrList all(func->getAttrOfType<DictionaryAttr>("qslaw.index_ranges"));
  if (auto old = dyn_cast_or_null<DictionaryAttr>(all.get(name)))
    if (auto e = old.getAs<IntegerAttr>("end"); e && e.getInt() <= extent)
      return;
  Builder b(ctx);
  std::string what = "axis " + std::to_string(axis) + " of '" +
                     nc.node.input(0) + "' (size " + std::to_string(extent) +
                     ") in Gather node '" + nc.node.name() + "'";
  all.set(name, b.getDictionaryAttr(
                    {b.getNamedAttr("begin", b.getI64IntegerAttr(-extent)),
                     b.getNamedAttr("end", b.getI64IntegerAttr(extent)),
                     b.getNamedAttr("indexes", b.getStringAttr(what))}));
  func->setAttr("qslaw.index_ranges", all.getDictionary(ctx));
}

LogicalResult convertGather(NodeContext &nc, SmallVectorImpl<Value> &r) {
  auto dt = nc.type(0), it = nc.type(1);
  int64_t axis = normAxis(nc.attrInt("axis", 0), dt.getRank());
  if (axis < 0 || axis >= dt.getRank())
    return nc.emitError() << "attribute 'axis' out of range for " << dt;
  SmallVector<int64_t> shape(dt.getShape().take_front(axis));
  llvm::append_range(shape, it.getShape());
  llvm::append_range(shape, dt.getShape().drop_front(axis + 1));
  if (allInputsConstant(nc) && dt.getNumElements() <= kMaxFoldElements) {
    DenseElementsAttr data = nc.constant(0), idx = nc.constant(1);
    int64_t inner = 1, outer = 1, extent = dt.getDimSize(axis);
    for (int64_t d = axis + 1; d < dt.getRank(); ++d)
      inner *= dt.getDimSize(d);
    for (int64_t d = 0; d < axis; ++d)
      outer *= dt.getDimSize(d);
    SmallVector<Scalar> vals;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t k = 0; k < it.getNumElements(); ++k) {
        int64_t j = scalarAt(idx, k).i;
        if (j < 0)
          j += extent;
        if (j < 0 || j >= extent)
          return nc.emitError() << "index " << scalarAt(idx, k).i
                                << " out of range [0, " << extent << ")";
        for (int64_t i = 0; i < inner; ++i)
          vals.push_back(scalarAt(data, (o * extent + j) * inner + i));
      }
    r.push_back(materialize(
        nc, makeConstant(RankedTensorType::get(shape, dt.getElementType()),
                         vals)));
    return success();
  }
  recordIndexRange(nc, 1, dt.getDimSize(axis), axis);
  OpBuilder &b = nc.b;
  unsigned rank = shape.size();
  unsigned ir = it.getRank();
  // Indices read through a projection; data via tensor.extract in the body.
  SmallVector<AffineExpr> idxExprs;
  for (unsigned i = 0; i < ir; ++i)
    idxExprs.push_back(b.getAffineDimExpr(axis + i));
  Value empty = tensor::EmptyOp::create(b, nc.loc, shape, dt.getElementType());
  SmallVector<AffineMap> maps{
      AffineMap::get(rank, 0, idxExprs, b.getContext()),
      b.getMultiDimIdentityMap(rank)};
  SmallVector<utils::IteratorType> its(rank, utils::IteratorType::parallel);
  Value data = nc.input(0);
  int64_t extent = dt.getDimSize(axis);
  r.push_back(
      linalg::GenericOp::create(
          b, nc.loc, empty.getType(), ValueRange{nc.input(1)}, empty, maps, its,
          [&](OpBuilder &nb, Location l, ValueRange args) {
            Value idx = args[0];
            if (!idx.getType().isIndex())
              idx = arith::IndexCastOp::create(nb, l, nb.getIndexType(), idx);
            // Negative indices count from the end.
            Value zero = arith::ConstantIndexOp::create(nb, l, 0);
            Value neg = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::slt,
                                              idx, zero);
            Value wrapped = arith::AddIOp::create(
                nb, l, idx, arith::ConstantIndexOp::create(nb, l, extent));
            idx = arith::SelectOp::create(nb, l, neg, wrapped, idx);
            SmallVector<Value> coords;
            for (int64_t d = 0; d < axis; ++d)
              coords.push_back(linalg::IndexOp::create(nb, l, d));
            coords.push_back(idx);
            for (int64_t d = axis + 1; d < dt.getRank(); ++d)
              coords.push_back(linalg::IndexOp::create(nb, l, d - 1 + ir));
            Value v = tensor::ExtractOp::create(nb, l, data, coords);
            linalg::YieldOp::create(nb, l, v);
          })
          .getResult(0));
  return success();
}

LogicalResult convertConcat(NodeContext &nc, SmallVectorImpl<Value> &r) {
  auto t0 = nc.type(0);
  auto axisOr = nc.axis(nc.attrInt("axis", 0), t0.getRank(), "attribute 'axis'");
  if (failed(axisOr))
    return failure();
  int64_t axis = *axisOr;
  SmallVector<int64_t> shape(t0.getShape());
  shape[axis] = 0;
  for (Value v : nc.inputs) {
    if (!v)
      return nc.emitError() << "an input is empty";
    auto t = cast<RankedTensorType>(v.getType());
    if (t.getRank() != t0.getRank())
      return nc.emitError() << "inputs of different ranks: " << t0 << " and "
                            << t;
    for (int64_t d = 0; d < t.getRank(); ++d)
      if (d != axis && t.getDimSize(d) != t0.getDimSize(d))
        return nc.emitError() << "inputs disagree outside axis " << axis
                              << ": " << t0 << " and " << t;
    shape[axis] += t.getDimSize(axis);
  }
  if (allInputsConstant(nc)) {
    int64_t outer = 1;
    for (int64_t d = 0; d < axis; ++d)
      outer *= shape[d];
    SmallVector<Scalar> vals;
    for (int64_t o = 0; o < outer; ++o)
      for (unsigned k = 0; k < nc.inputs.size(); ++k) {
        DenseElementsAttr c = nc.constant(k);
        int64_t chunk = c.getNumElements() / std::max<int64_t>(outer, 1);
        for (int64_t i = 0; i < chunk; ++i)
          vals.push_back(scalarAt(c, o * chunk + i));
      }
    r.push_back(materialize(
        nc, makeConstant(RankedTensorType::get(shape, t0.getElementType()),
                         vals)));
    return success();
  }
  Value acc = tensor::EmptyOp::create(nc.b, nc.loc, shape, t0.getElementType());
  int64_t off = 0;
  for (Value v : nc.inputs) {
    auto t = cast<RankedTensorType>(v.getType());
    if (t.getNumElements() == 0) // nothing to insert (and an offset at the
      continue;                  // end would be invalid IR)
    SmallVector<int64_t> offs(t.getRank(), 0), strides(t.getRank(), 1);
    offs[axis] = off;
    acc = tensor::InsertSliceOp::create(nc.b, nc.loc, v, acc, ValueRange{},
                                        ValueRange{}, ValueRange{}, offs,
                                        t.getShape(), strides);
    off += t.getDimSize(axis);
  }
  r.push_back(acc);
  return success();
}

LogicalResult convertSlice(NodeContext &nc, SmallVectorImpl<Value> &r) {
  auto t = nc.type(0);
  auto starts = nc.constInts(1), ends = nc.constInts(2);
  if (!starts || !ends)
    return nc.emitError() << "inputs 'starts' and 'ends' must be compile-time "
                             "constants";
  std::vector<int64_t> axes, steps;
  if (nc.input(3)) {
    auto a = nc.constInts(3);
    if (!a)
      return nc.emitError() << "input 'axes' must be a compile-time constant";
    axes = *a;
  } else {
    for (size_t i = 0; i < starts->size(); ++i)
      axes.push_back(i);
  }
  if (nc.input(4)) {
    auto s = nc.constInts(4);
    if (!s)
      return nc.emitError() << "input 'steps' must be a compile-time constant";
    steps = *s;
  } else {
    steps.assign(starts->size(), 1);
  }
  SmallVector<int64_t> offs(t.getRank(), 0), sizes(t.getShape()),
      strides(t.getRank(), 1);
  bool negative = false;
  auto checkedAxes = nc.axes(axes, t.getRank(), "axes");
  if (failed(checkedAxes))
    return failure();
  if (starts->size() != axes.size() || ends->size() != axes.size() ||
      steps.size() != axes.size())
    return nc.emitError() << "starts, ends, axes and steps differ in length";
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t ax = (*checkedAxes)[i], dim = t.getDimSize(ax);
    int64_t step = steps[i];
    if (step == 0)
      return nc.emitError() << "step 0 on axis " << ax;
    int64_t st = (*starts)[i], en = (*ends)[i];
    if (st < 0)
      st += dim;
    if (en < 0)
      en += dim;
    int64_t size;
    if (step > 0) {
      st = std::clamp<int64_t>(st, 0, dim);
      en = std::clamp<int64_t>(en, 0, dim);
      size = en > st ? (en - st + step - 1) / step : 0;
    } else {
      // ONNX clamps to [0, dim-1] for the start and [-1, dim-1] for the end.
      st = std::clamp<int64_t>(st, 0, dim - 1);
      en = std::clamp<int64_t>(en, -1, dim - 1);
      size = st > en ? (st - en + (-step) - 1) / (-step) : 0;
      negative = true;
    }
    // An empty slice starts at 0: an offset at the end (st == dim) is
    // invalid tensor.extract_slice IR even with size 0.
    offs[ax] = size ? st : 0;
    sizes[ax] = size;
    strides[ax] = step;
  }
  if (negative) {
    // tensor.extract_slice needs positive strides: gather by index.
    auto outTy = RankedTensorType::get(sizes, t.getElementType());
    if (llvm::is_contained(sizes, 0)) {
      r.push_back(tensor::EmptyOp::create(nc.b, nc.loc, sizes, t.getElementType()));
      return success();
    }
    Value src = nc.input(0);
    Value empty = tensor::EmptyOp::create(nc.b, nc.loc, sizes, t.getElementType());
    unsigned rank = t.getRank();
    SmallVector<utils::IteratorType> its(rank, utils::IteratorType::parallel);
    r.push_back(linalg::GenericOp::create(
                    nc.b, nc.loc, outTy, ValueRange{}, empty,
                    ArrayRef<AffineMap>{nc.b.getMultiDimIdentityMap(rank)}, its,
                    [&](OpBuilder &b, Location l, ValueRange) {
                      SmallVector<Value> idx;
                      for (unsigned d = 0; d < rank; ++d) {
                        Value i = linalg::IndexOp::create(b, l, d);
                        Value scaled = arith::MulIOp::create(
                            b, l, i, arith::ConstantIndexOp::create(b, l, strides[d]));
                        idx.push_back(arith::AddIOp::create(
                            b, l, scaled, arith::ConstantIndexOp::create(b, l, offs[d])));
                      }
                      linalg::YieldOp::create(b, l,
                                              tensor::ExtractOp::create(b, l, src, idx)
                                                  .getResult());
                    })
                    .getResult(0));
    return success();
  }
  auto outTy = RankedTensorType::get(sizes, t.getElementType());
  if (llvm::is_contained(sizes, 0)) { // an empty slice
    r.push_back(tensor::EmptyOp::create(nc.b, nc.loc, sizes, t.getElementType()));
    return success();
  }
  if (DenseElementsAttr c = t.getNumElements() <= kMaxFoldElements
                              ? nc.constant(0)
                              : DenseElementsAttr()) {
    SmallVector<Scalar> vals;
    int64_t n = outTy.getNumElements();
    SmallVector<int64_t> idx(t.getRank(), 0), srcStrides(t.getRank(), 1);
    for (int64_t d = t.getRank() - 2; d >= 0; --d)
      srcStrides[d] = srcStrides[d + 1] * t.getDimSize(d + 1);
    for (int64_t f = 0; f < n; ++f) {
      int64_t off = 0;
      for (int64_t d = 0; d < t.getRank(); ++d)
        off += (offs[d] + idx[d] * strides[d]) * srcStrides[d];
      vals.push_back(scalarAt(c, off));
      for (int64_t d = t.getRank() - 1; d >= 0; --d) {
        if (++idx[d] < sizes[d])
          break;
        idx[d] = 0;
      }
    }
    r.push_back(materialize(nc, makeConstant(outTy, vals)));
    return success();
  }
  r.push_back(tensor::ExtractSliceOp::create(nc.b, nc.loc, outTy, nc.input(0),
                                             ValueRange{}, ValueRange{},
                                             ValueRange{}, offs, sizes, strides));
  return success();
}

LogicalResult convertExpand(NodeContext &nc, SmallVectorImpl<Value> &r) {
  auto shape = nc.constInts(1);
  if (!shape)
    return nc.emitError() << "input 'shape' must be a compile-time constant";
  auto t = nc.type(0);
  auto out = broadcastShapes({t.getShape(), ArrayRef<int64_t>(*shape)});
  if (!out)
    return nc.emitError() << t << " does not broadcast to the target shape";
  if (DenseElementsAttr c = nc.constant(0))
    if (DenseElementsAttr f = foldElementwise(
            {c}, *out, t.getElementType(),
            [](ArrayRef<Scalar> a) { return a[0]; })) {
      r.push_back(materialize(nc, f));
      return success();
    }
  r.push_back(buildElementwise(nc.b, nc.loc, nc.input(0), *out,
                               t.getElementType(),
                               [](OpBuilder &, Location, ValueRange a) {
                                 return a[0];
                               }));
  return success();
}

LogicalResult convertRange(NodeContext &nc, SmallVectorImpl<Value> &r) {
  DenseElementsAttr s = nc.constant(0), l = nc.constant(1), d = nc.constant(2);
  if (!s || !l || !d)
    return nc.emitError() << "start, limit and delta must be compile-time "
                             "constants";
  Type elem = s.getElementType();
  auto val = [&](DenseElementsAttr a) -> double {
    return isa<FloatType>(elem) ? (*a.getValues<APFloat>().begin()).convertToDouble()
                                : double((*a.getValues<APInt>().begin()).getSExtValue());
  };
  double start = val(s), limit = val(l), delta = val(d);
  if (delta == 0)
    return nc.emitError() << "delta is zero";
  int64_t n = std::max<int64_t>(0, int64_t(std::ceil((limit - start) / delta)));
  auto type = RankedTensorType::get({n}, elem);
  DenseElementsAttr out;
  if (isa<FloatType>(elem)) {
    SmallVector<APFloat> v;
    for (int64_t i = 0; i < n; ++i)
      v.push_back(APFloat(float(start + i * delta)));
    if (!elem.isF32())
      return nc.emitError() << "Range of " << elem << " is not supported";
    out = DenseElementsAttr::get(type, v);
  } else {
    SmallVector<APInt> v;
    for (int64_t i = 0; i < n; ++i)
      v.push_back(APInt(elem.getIntOrFloatBitWidth(), int64_t(start + i * delta),
                        /*isSigned=*/true));
    out = DenseElementsAttr::get(type, v);
  }
  r.push_back(arith::ConstantOp::create(nc.b, nc.loc, out));
  return success();
}

LogicalResult convertConstantOfShape(NodeContext &nc, SmallVectorImpl<Value> &r) {
  auto shape = nc.constInts(0);
  if (!shape)
    return nc.emitError() << "input 'input' (the shape) must be a "
                             "compile-time constant";
  Type elem = nc.b.getF32Type();
  Attribute value = nc.b.getF32FloatAttr(0.0f);
  if (const auto *a = nc.attr("value")) {
    auto data = readTensor(a->t(), "");
    if (!data)
      return nc.emitError() << llvm::toString(data.takeError());
    using TP = onnx::TensorProto;
    const char *p = data->bytes.data();
    switch (data->dataType) {
    case TP::FLOAT:
      value = nc.b.getF32FloatAttr(*reinterpret_cast<const float *>(p));
      break;
    case TP::INT64:
      elem = nc.b.getI64Type();
      value = nc.b.getI64IntegerAttr(*reinterpret_cast<const int64_t *>(p));
      break;
    case TP::INT32:
      elem = nc.b.getI32Type();
      value = nc.b.getI32IntegerAttr(*reinterpret_cast<const int32_t *>(p));
      break;
    case TP::BOOL:
      elem = nc.b.getI1Type();
      value = nc.b.getBoolAttr(*p != 0);
      break;
    default:
      return nc.emitError() << "attribute 'value' of type "
                            << dataTypeName(data->dataType)
                            << " is not supported";
    }
  }
  auto type = RankedTensorType::get(*shape, elem);
  r.push_back(arith::ConstantOp::create(nc.b, nc.loc,
                                        DenseElementsAttr::get(type, value)));
  return success();
}

LogicalResult convertTrilu(NodeContext &nc, SmallVectorImpl<Value> &r) {
  auto t = nc.type(0);
  int64_t k = 0;
  if (nc.input(1)) {
    auto kv = nc.constInts(1);
    if (!kv)
      return nc.emitError() << "input 'k' must be a compile-time constant";
    k = (*kv)[0];
  }
  bool upper = nc.attrInt("upper", 1);
  int64_t rank = t.getRank();
  r.push_back(buildElementwise(
      nc.b, nc.loc, nc.input(0), t.getShape(), t.getElementType(),
      [&](OpBuilder &b, Location l, ValueRange a) -> Value {
        Value i = linalg::IndexOp::create(b, l, rank - 2);
        Value j = linalg::IndexOp::create(b, l, rank - 1);
        Value ik = arith::AddIOp::create(b, l, i,
                                         arith::ConstantIndexOp::create(b, l, k));
        // upper keeps j >= i + k; lower keeps j <= i + k.
        Value keep = arith::CmpIOp::create(
            b, l, upper ? arith::CmpIPredicate::sge : arith::CmpIPredicate::sle,
            j, ik);
        return arith::SelectOp::create(
            b, l, keep, a[0], scalarConst(b, l, a[0].getType(), 0));
      }));
  return success();
}
} // namespace

void registerTensorConverters() {
  registerConverter("", "Gather", 13, 23, convertGather);
  registerConverter("", "Concat", 13, 23, convertConcat);
  registerConverter("", "Slice", 13, 23, convertSlice);
  registerConverter("", "Expand", 13, 23, convertExpand);
  registerConverter("", "Range", 11, 23, convertRange);
  registerConverter("", "ConstantOfShape", 9, 23, convertConstantOfShape);
  registerConverter("", "Trilu", 14, 23, convertTrilu);
}

} // namespace qslaw::onnx_import

//===----------------------------------------------------------------------===//
// qslaw.MaskedScatter (see GraphRewrites.cpp)
//===----------------------------------------------------------------------===//

#include "mlir/Dialect/SCF/IR/SCF.h"

namespace qslaw::onnx_import {
namespace {
/// out = data; the k-th true position of mask (row-major) takes src[k].
/// A sequential scan (scf.for) over the flattened tensors.
LogicalResult convertMaskedScatter(NodeContext &nc, SmallVectorImpl<Value> &r) {
  auto dt = nc.type(0), mt = nc.type(1);
  if (dt.getShape() != mt.getShape())
    return nc.emitError() << "mask " << mt << " must have the shape of data "
                          << dt;
  OpBuilder &b = nc.b;
  Location loc = nc.loc;
  int64_t n = dt.getNumElements();
  int64_t srcLen = nc.type(2).getNumElements();
  Value data = buildReshape(b, loc, nc.input(0), {n});
  Value mask = buildReshape(b, loc, nc.input(1), {n});
  Value src = buildReshape(b, loc, nc.input(2), {srcLen});
  if (!mt.getElementType().isInteger(1))
    return nc.emitError() << "mask must be boolean, got " << mt;
  auto loop = mlir::qslaw::buildMaskedScan(
      b, loc, mask, n, srcLen, data,
      [&](OpBuilder &tb, Location tl, Value acc, Value p, Value k) -> Value {
        Value v = tensor::ExtractOp::create(tb, tl, src, k);
        return tensor::InsertOp::create(tb, tl, v, acc, p);
      });
  // qslaw-make-train-step recognises the scan by this marker (its
  // derivative is the adjoint scan, see Autodiff.cpp).
  loop->setAttr(mlir::qslaw::kMaskedScatterAttr, b.getUnitAttr());
  r.push_back(buildReshape(b, loc, loop.getResult(0), dt.getShape()));
  return success();
}
} // namespace

void registerMaskedScatterConverter() {
  registerConverter("qslaw", "MaskedScatter", 1, 1, convertMaskedScatter);
}
} // namespace qslaw::onnx_import

//===----------------------------------------------------------------------===//
// CumSum
//===----------------------------------------------------------------------===//

namespace qslaw::onnx_import {
namespace {
/// y[..., j, ...] = sum over k of x[..., k, ...] for k <= j (k < j when
/// exclusive; k >= j / k > j when reverse): one linalg.generic with an extra
/// reduction loop k and a predicate on (j, k). Quadratic along the axis,
/// which is short in the models we import (positions, masks).
LogicalResult convertCumSum(NodeContext &nc, SmallVectorImpl<Value> &r) {
  auto t = nc.type(0);
  auto axisV = nc.constInts(1);
  if (!axisV || axisV->size() != 1)
    return nc.emitError() << "input 'axis' must be a compile-time scalar";
  int64_t rank = t.getRank(), axis = (*axisV)[0] < 0 ? (*axisV)[0] + rank
                                                     : (*axisV)[0];
  if (axis < 0 || axis >= rank)
    return nc.emitError() << "axis " << (*axisV)[0] << " out of range for " << t;
  bool exclusive = nc.attrInt("exclusive", 0), reverse = nc.attrInt("reverse", 0);
  OpBuilder &b = nc.b;
  MLIRContext *ctx = b.getContext();
  Type et = t.getElementType();
  unsigned loops = rank + 1, kDim = rank;
  SmallVector<AffineExpr> in;
  for (int64_t d = 0; d < rank; ++d)
    in.push_back(getAffineDimExpr(d == axis ? kDim : d, ctx));
  SmallVector<AffineMap> maps{AffineMap::get(loops, 0, in, ctx),
                              AffineMap::getMultiDimIdentityMap(loops, ctx)
                                  .getMajorSubMap(rank)};
  SmallVector<utils::IteratorType> its(loops, utils::IteratorType::parallel);
  its[kDim] = utils::IteratorType::reduction;
  Value empty = tensor::EmptyOp::create(b, nc.loc, t.getShape(), et);
  Value init = linalg::FillOp::create(b, nc.loc, scalarConst(b, nc.loc, et, 0),
                                      empty)
                   .getResult(0);
  // The k loop has the axis' extent: read it through a dummy operand.
  r.push_back(
      linalg::GenericOp::create(
          b, nc.loc, init.getType(), nc.input(0), init, maps, its,
          [&](OpBuilder &nb, Location l, ValueRange a) {
            Value j = linalg::IndexOp::create(nb, l, axis);
            Value k = linalg::IndexOp::create(nb, l, kDim);
            arith::CmpIPredicate pred =
                reverse ? (exclusive ? arith::CmpIPredicate::sgt
                                     : arith::CmpIPredicate::sge)
                        : (exclusive ? arith::CmpIPredicate::slt
                                     : arith::CmpIPredicate::sle);
            Value take = arith::CmpIOp::create(nb, l, pred, k, j);
            Value v = arith::SelectOp::create(nb, l, take, a[0],
                                              scalarConst(nb, l, et, 0));
            Value sum = isa<FloatType>(et)
                            ? arith::AddFOp::create(nb, l, a[1], v).getResult()
                            : arith::AddIOp::create(nb, l, a[1], v).getResult();
            linalg::YieldOp::create(nb, l, sum);
          })
          .getResult(0));
  return success();
}
} // namespace

void registerCumSumConverter() {
  registerConverter("", "CumSum", 14, 23, convertCumSum);
}
} // namespace qslaw::onnx_import
