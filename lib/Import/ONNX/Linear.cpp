//===- Linear.cpp - MatMul, Gemm, MatMulNBits -----------------------------===//
#include "LinalgBuilders.h"
#include "NodeContext.h"
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;

namespace qslaw::onnx_import {
namespace {

Value zeroFilled(OpBuilder &b, Location loc, ArrayRef<int64_t> shape, Type elem) {
  Value e = tensor::EmptyOp::create(b, loc, shape, elem);
  return linalg::FillOp::create(b, loc, scalarConst(b, loc, elem, 0.0), e)
      .getResult(0);
}

Value transpose2D(OpBuilder &b, Location loc, Value v) {
  auto t = cast<RankedTensorType>(v.getType());
  Value e = tensor::EmptyOp::create(
      b, loc, ArrayRef<int64_t>{t.getDimSize(1), t.getDimSize(0)},
      t.getElementType());
  return linalg::TransposeOp::create(b, loc, v, e, ArrayRef<int64_t>{1, 0})
      .getResult()[0];
}

/// [..., K] x [K, N] as a 2-D linalg.matmul over the collapsed leading dims.
Value matmulND2D(OpBuilder &b, Location loc, Value a, Value w) {
  auto at = cast<RankedTensorType>(a.getType());
  auto wt = cast<RankedTensorType>(w.getType());
  int64_t k = at.getShape().back(), n = wt.getDimSize(1), m = 1;
  for (int64_t d : at.getShape().drop_back())
    m *= d;
  Value a2 = buildReshape(b, loc, a, {m, k});
  Value init = zeroFilled(b, loc, {m, n}, at.getElementType());
  Value y = linalg::MatmulOp::create(b, loc, ValueRange{a2, w}, ValueRange{init})
                .getResult(0);
  SmallVector<int64_t> shape(at.getShape().drop_back());
  shape.push_back(n);
  return buildReshape(b, loc, y, shape);
}

LogicalResult convertMatMul(NodeContext &nc, SmallVectorImpl<Value> &r) {
  auto at = nc.type(0), bt = nc.type(1);
  if (at.getRank() == 0 || bt.getRank() == 0) // found by fuzz_onnx_import
    return nc.emitError() << "inputs must have rank >= 1, got " << at
                          << " x " << bt;
  // NumPy 1-D rules: a vector on the left is a row, on the right a column;
  // the added dimension is dropped from the result.
  if (at.getRank() == 1 || bt.getRank() == 1) {
    NodeContext inner = nc;
    SmallVector<int64_t> outShape;
    if (at.getRank() == 1)
      inner.inputs[0] = buildReshape(nc.b, nc.loc, nc.input(0), {1, at.getDimSize(0)});
    if (bt.getRank() == 1)
      inner.inputs[1] = buildReshape(nc.b, nc.loc, nc.input(1), {bt.getDimSize(0), 1});
    SmallVector<Value> tmp;
    if (failed(convertMatMul(inner, tmp)))
      return failure();
    auto yt = cast<RankedTensorType>(tmp[0].getType());
    SmallVector<int64_t> shape(yt.getShape());
    if (bt.getRank() == 1)
      shape.pop_back();
    if (at.getRank() == 1)
      shape.erase(shape.end() - (bt.getRank() == 1 ? 1 : 2));
    r.push_back(buildReshape(nc.b, nc.loc, tmp[0], shape));
    return success();
  }
  if (at.getShape().back() != bt.getDimSize(bt.getRank() - 2))
    return nc.emitError() << "inner dimensions differ: " << at << " x " << bt;
  if (bt.getRank() == 2) {
    r.push_back(matmulND2D(nc.b, nc.loc, nc.input(0), nc.input(1)));
    return success();
  }
  // Batched: broadcast the batch dims (NumPy rules), then one batch_matmul.
  auto batchShape = broadcastShapes({at.getShape().drop_back(2),
                                     bt.getShape().drop_back(2)});
  if (!batchShape)
    return nc.emitError() << "batch dimensions do not broadcast: " << at
                          << " x " << bt;
  int64_t batch = 1;
  for (int64_t d : *batchShape)
    batch *= d;
  int64_t m = at.getDimSize(at.getRank() - 2), k = at.getShape().back(),
          n = bt.getShape().back();
  auto broadcastTo = [&](Value v, int64_t r, int64_t c) {
    auto t = cast<RankedTensorType>(v.getType());
    SmallVector<int64_t> full(*batchShape);
    full.push_back(r);
    full.push_back(c);
    if (t.getShape() != ArrayRef<int64_t>(full))
      v = buildElementwise(nc.b, nc.loc, v, full, t.getElementType(),
                           [](OpBuilder &, Location, ValueRange a) { return a[0]; });
    return buildReshape(nc.b, nc.loc, v, {batch, r, c});
  };
  Value a3 = broadcastTo(nc.input(0), m, k);
  Value b3 = broadcastTo(nc.input(1), k, n);
  Value init = zeroFilled(nc.b, nc.loc, {batch, m, n}, at.getElementType());
  Value y = linalg::BatchMatmulOp::create(nc.b, nc.loc, ValueRange{a3, b3},
                                          ValueRange{init})
                .getResult(0);
  SmallVector<int64_t> shape(*batchShape);
  shape.push_back(m);
  shape.push_back(n);
  r.push_back(buildReshape(nc.b, nc.loc, y, shape));
  return success();
}

LogicalResult convertGemm(NodeContext &nc, SmallVectorImpl<Value> &r) {
  Value a = nc.input(0), w = nc.input(1), c = nc.input(2);
  if (nc.type(0).getRank() != 2 || nc.type(1).getRank() != 2)
    return nc.emitError() << "Gemm needs 2-D A and B";
  if (nc.attrInt("transA", 0))
    a = transpose2D(nc.b, nc.loc, a);
  if (nc.attrInt("transB", 0))
    w = transpose2D(nc.b, nc.loc, w);
  Value y = matmulND2D(nc.b, nc.loc, a, w);
  auto yt = cast<RankedTensorType>(y.getType());
  float alpha = nc.attrFloat("alpha", 1.0f), beta = nc.attrFloat("beta", 1.0f);
  SmallVector<Value> ins{y};
  if (c)
    ins.push_back(c);
  SmallVector<ArrayRef<int64_t>> shapes{yt.getShape()};
  if (c)
    shapes.push_back(cast<RankedTensorType>(c.getType()).getShape());
  if (!broadcastShapes(shapes))
    return nc.emitError() << "C does not broadcast to " << yt;
  r.push_back(buildElementwise(
      nc.b, nc.loc, ins, yt.getShape(), yt.getElementType(),
      [&](OpBuilder &b, Location l, ValueRange v) -> Value {
        Type t = v[0].getType();
        Value acc = alpha == 1.0f ? v[0]
                                  : arith::MulFOp::create(
                                        b, l, scalarConst(b, l, t, alpha), v[0])
                                        .getResult();
        if (v.size() > 1)
          acc = arith::AddFOp::create(
              b, l, acc,
              beta == 1.0f ? v[1]
                           : arith::MulFOp::create(
                                 b, l, scalarConst(b, l, t, beta), v[1])
                                 .getResult());
        return acc;
      }));
  return success();
}

/// com.microsoft MatMulNBits -> qslaw.qmatmul; the float weight never exists.
LogicalResult convertMatMulNBits(NodeContext &nc, SmallVectorImpl<Value> &r) {
  int64_t k = nc.attrInt("K", -1), n = nc.attrInt("N", -1);
  int64_t bits = nc.attrInt("bits", 4), bs = nc.attrInt("block_size", -1);
  if (k <= 0 || n <= 0 || bs <= 0)
    return nc.emitError() << "attributes K, N and block_size must be positive";
  if (bits != 2 && bits != 4 && bits != 8)
    return nc.emitError() << "attribute 'bits' = " << bits
                          << " is not supported (2, 4 or 8)";
  if (nc.input(4) && nc.type(4).getNumElements() > 0)
    return nc.emitError() << "input 'g_idx' is not supported";
  DenseElementsAttr bAttr = nc.constant(1), sAttr = nc.constant(2);
  if (!bAttr || !sAttr)
    return nc.emitError() << "inputs 'B' and 'scales' must be initializers";
  int64_t kb = (k + bs - 1) / bs, blob = bs * bits / 8;
  if (bAttr.getNumElements() != n * kb * blob)
    return nc.emitError() << "input 'B' has " << bAttr.getNumElements()
                          << " bytes, N * k_blocks * blob_size = "
                          << n * kb * blob;
  if (sAttr.getNumElements() != n * kb)
    return nc.emitError() << "input 'scales' has " << sAttr.getNumElements()
                          << " values, N * k_blocks = " << n * kb;
  auto xTy = nc.type(0);
  if (xTy.getRank() == 0)
    return nc.emitError() << "input 'A' must have rank >= 1";
  if (xTy.getShape().back() != k)
    return nc.emitError() << "input 'A' inner dimension "
                          << xTy.getShape().back() << " differs from K = " << k;
  SmallVector<uint8_t> bytes;
  for (const APInt &v : bAttr.getValues<APInt>())
    bytes.push_back(uint8_t(v.getZExtValue()));
  unsigned perByte = 8 / bits, mask = (1u << bits) - 1;
  SmallVector<APInt> codes;
  codes.reserve(n * k);
  for (int64_t row = 0; row < n; ++row)
    for (int64_t col = 0; col < k; ++col) {
      int64_t blk = col / bs, i = col % bs;
      uint8_t byte = bytes[(row * kb + blk) * blob + i / perByte];
      codes.push_back(APInt(bits, (byte >> ((i % perByte) * bits)) & mask));
    }
  OpBuilder &b = nc.b;
  Type codeTy = b.getIntegerType(bits);
  int64_t group = bs >= k ? 0 : bs;
  Value codesV = arith::ConstantOp::create(
      b, nc.loc,
      DenseElementsAttr::get(RankedTensorType::get({n, k}, codeTy), codes));
  auto sTy = RankedTensorType::get({n, kb}, sAttr.getElementType());
  Value scales = arith::ConstantOp::create(b, nc.loc, sAttr.reshape(sTy));
  Value zeros;
  if (nc.input(3)) {
    DenseElementsAttr zAttr = nc.constant(3);
    if (!zAttr)
      return nc.emitError() << "input 'zero_points' must be an initializer";
    if (!zAttr.getElementType().isInteger(8))
      return nc.emitError() << "float zero points are not supported";
    int64_t rowBytes = (kb * bits + 7) / 8;
    if (zAttr.getNumElements() != n * rowBytes)
      return nc.emitError() << "input 'zero_points' has "
                            << zAttr.getNumElements() << " bytes, expected "
                            << n * rowBytes;
    SmallVector<uint8_t> zb;
    for (const APInt &v : zAttr.getValues<APInt>())
      zb.push_back(uint8_t(v.getZExtValue()));
    SmallVector<APInt> z;
    for (int64_t row = 0; row < n; ++row)
      for (int64_t j = 0; j < kb; ++j)
        z.push_back(APInt(
            bits, (zb[row * rowBytes + j / perByte] >> ((j % perByte) * bits)) &
                      mask));
    zeros = arith::ConstantOp::create(
        b, nc.loc,
        DenseElementsAttr::get(RankedTensorType::get({n, kb}, codeTy), z));
  }
  Value bias = nc.input(5);
  auto spec = ::mlir::qslaw::QuantSpecAttr::get(b.getContext(), bits, group,
                                        /*symmetric=*/!zeros,
                                        ::mlir::qslaw::ScaleMode::Scale);
  SmallVector<int64_t> outShape(xTy.getShape().drop_back());
  outShape.push_back(n);
  r.push_back(::mlir::qslaw::QMatmulOp::create(
      b, nc.loc, RankedTensorType::get(outShape, xTy.getElementType()),
      nc.input(0), codesV, scales, zeros, bias, spec));
  return success();
}
/// A convolution whose stride equals its kernel (no padding, dilation 1,
/// kernel dividing the image) - a ViT's patch embedding - is a GEMM over
/// non-overlapping patches: im2col is a reshape and one transpose of the
/// image, and the product y[p, f] = sum_q patches[p, q] * w[f, q] is a
/// contraction that the GEMM library runs. Returns null when `x`/`w` are
/// not such a case.
Value patchEmbeddingAsGemm(OpBuilder &b, Location loc, Value x, Value w,
                           ArrayRef<int64_t> strides, ArrayRef<int64_t> dil) {
  auto xt = cast<RankedTensorType>(x.getType());
  auto wt = cast<RankedTensorType>(w.getType());
  if (!xt.hasStaticShape() || !wt.hasStaticShape())
    return {};
  int64_t n = xt.getDimSize(0), c = xt.getDimSize(1), h = xt.getDimSize(2),
          wd = xt.getDimSize(3), f = wt.getDimSize(0), kh = wt.getDimSize(2),
          kw = wt.getDimSize(3);
  if (strides[0] != kh || strides[1] != kw || dil[0] != 1 || dil[1] != 1 ||
      h % kh || wd % kw || wt.getDimSize(1) != c)
    return {};
  int64_t oh = h / kh, ow = wd / kw, p = n * oh * ow, q = c * kh * kw;
  Type et = xt.getElementType();
  // [N, C, OH, KH, OW, KW] -> [N, OH, OW, C, KH, KW] -> [P, Q]
  Value x6 = buildReshape(b, loc, x, {n, c, oh, kh, ow, kw});
  Value e6 = tensor::EmptyOp::create(
      b, loc, ArrayRef<int64_t>{n, oh, ow, c, kh, kw}, et);
  Value patches = linalg::TransposeOp::create(b, loc, x6, e6,
                                              ArrayRef<int64_t>{0, 2, 4, 1, 3, 5})
                      .getResult()[0];
  patches = buildReshape(b, loc, patches, {p, q});
  Value w2 = buildReshape(b, loc, w, {f, q});
  MLIRContext *ctx = b.getContext();
  AffineExpr dp = getAffineDimExpr(0, ctx), df = getAffineDimExpr(1, ctx),
             dq = getAffineDimExpr(2, ctx);
  SmallVector<AffineMap> maps{AffineMap::get(3, 0, {dp, dq}, ctx),
                              AffineMap::get(3, 0, {df, dq}, ctx),
                              AffineMap::get(3, 0, {dp, df}, ctx)};
  SmallVector<utils::IteratorType> its{utils::IteratorType::parallel,
                                       utils::IteratorType::parallel,
                                       utils::IteratorType::reduction};
  Value y = linalg::GenericOp::create(
                b, loc, TypeRange{RankedTensorType::get({p, f}, et)},
                ValueRange{patches, w2}, ValueRange{zeroFilled(b, loc, {p, f}, et)},
                maps, its,
                [](OpBuilder &nb, Location nl, ValueRange a) {
                  Value m = arith::MulFOp::create(nb, nl, a[0], a[1]);
                  linalg::YieldOp::create(
                      nb, nl, Value(arith::AddFOp::create(nb, nl, a[2], m)));
                })
                .getResult(0);
  // [N, OH, OW, F] -> [N, F, OH, OW]
  Value y4 = buildReshape(b, loc, y, {n, oh, ow, f});
  Value e4 = tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{n, f, oh, ow}, et);
  return linalg::TransposeOp::create(b, loc, y4, e4,
                                     ArrayRef<int64_t>{0, 3, 1, 2})
      .getResult()[0];
}

/// 2-D convolution, NCHW x FCHW (CLIP's patch embedding), group 1.
LogicalResult convertConv(NodeContext &nc, SmallVectorImpl<Value> &r) {
  auto xt = nc.type(0), wt = nc.type(1);
  if (xt.getRank() != 4 || wt.getRank() != 4)
    return nc.emitError() << "only 2-D convolutions (rank-4 input and weight) "
                             "are supported";
  if (nc.attrInt("group", 1) != 1)
    return nc.emitError() << "attribute 'group' = " << nc.attrInt("group", 1)
                          << " is not supported (only 1)";
  std::string autoPad = nc.attrString("auto_pad", "NOTSET");
  if (autoPad != "NOTSET" && autoPad != "VALID" && autoPad != "SAME_UPPER" &&
      autoPad != "SAME_LOWER")
    return nc.emitError() << "auto_pad '" << autoPad << "' is not supported";
  auto strides = nc.attrInts("strides").value_or(std::vector<int64_t>{1, 1});
  auto dil = nc.attrInts("dilations").value_or(std::vector<int64_t>{1, 1});
  auto pads = nc.attrInts("pads").value_or(std::vector<int64_t>{0, 0, 0, 0});
  // Lengths and signs checked here: the code below indexes them as 2-D
  // (a one-element strides list read past its end; found by
  // fuzz_onnx_import).
  auto positive = [](const std::vector<int64_t> &v) {
    return llvm::all_of(v, [](int64_t x) { return x > 0 && x < (1 << 20); });
  };
  if (strides.size() != 2 || !positive(strides))
    return nc.emitError() << "attribute 'strides' must be 2 positive values";
  if (dil.size() != 2 || !positive(dil))
    return nc.emitError() << "attribute 'dilations' must be 2 positive values";
  if (pads.size() != 4 || llvm::any_of(pads, [](int64_t x) {
        return x < 0 || x >= (1 << 20);
      }))
    return nc.emitError() << "attribute 'pads' must be 4 non-negative values";
  if (autoPad == "VALID")
    pads = {0, 0, 0, 0};
  if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
    // Output = ceil(in / stride); the odd padding goes to the end (UPPER)
    // or the beginning (LOWER).
    for (int d = 0; d < 2; ++d) {
      int64_t in = xt.getDimSize(2 + d), k = wt.getDimSize(2 + d);
      int64_t out = (in + strides[d] - 1) / strides[d];
      int64_t total = std::max<int64_t>(
          0, (out - 1) * strides[d] + (k - 1) * dil[d] + 1 - in);
      int64_t small = total / 2, large = total - small;
      pads[d] = autoPad == "SAME_UPPER" ? small : large;
      pads[d + 2] = autoPad == "SAME_UPPER" ? large : small;
    }
  }
  OpBuilder &b = nc.b;
  Type et = xt.getElementType();
  Value x = nc.input(0);
  bool padded = llvm::any_of(pads, [](int64_t p) { return p != 0; });
  Value patchGemm;
  if (!padded && isa<FloatType>(et))
    patchGemm = patchEmbeddingAsGemm(b, nc.loc, x, nc.input(1), strides, dil);
  if (padded) {
    SmallVector<OpFoldResult> lo, hi;
    for (int64_t v : {int64_t(0), int64_t(0), pads[0], pads[1]})
      lo.push_back(b.getIndexAttr(v));
    for (int64_t v : {int64_t(0), int64_t(0), pads[2], pads[3]})
      hi.push_back(b.getIndexAttr(v));
    SmallVector<int64_t> shape(xt.getShape());
    shape[2] += pads[0] + pads[2];
    shape[3] += pads[1] + pads[3];
    x = tensor::PadOp::create(b, nc.loc, RankedTensorType::get(shape, et), x, lo,
                              hi, scalarConst(b, nc.loc, et, 0.0));
    xt = cast<RankedTensorType>(x.getType());
  }
  int64_t oh = (xt.getDimSize(2) - dil[0] * (wt.getDimSize(2) - 1) - 1) / strides[0] + 1;
  int64_t ow = (xt.getDimSize(3) - dil[1] * (wt.getDimSize(3) - 1) - 1) / strides[1] + 1;
  SmallVector<int64_t> out{xt.getDimSize(0), wt.getDimSize(0), oh, ow};
  Value y = patchGemm;
  if (!y) {
    Value init = zeroFilled(b, nc.loc, out, et);
    SmallVector<NamedAttribute> attrs{
        b.getNamedAttr("strides", b.getI64TensorAttr(strides)),
        b.getNamedAttr("dilations", b.getI64TensorAttr(dil))};
    y = linalg::Conv2DNchwFchwOp::create(
            b, nc.loc, TypeRange{init.getType()}, ValueRange{x, nc.input(1)},
            ValueRange{init}, attrs)
            .getResult(0);
  }
  if (Value bias = nc.input(2)) {
    Value b4 = buildReshape(b, nc.loc, bias, {1, wt.getDimSize(0), 1, 1});
    y = buildElementwise(b, nc.loc, {y, b4}, out, et,
                         [](OpBuilder &b, Location l, ValueRange a) -> Value {
                           return arith::AddFOp::create(b, l, a[0], a[1]);
                         });
  }
  r.push_back(y);
  return success();
}
} // namespace

void registerLinearConverters() {
  registerConverter("", "Conv", 11, 23, convertConv);
  registerConverter("", "MatMul", 13, 23, convertMatMul);
  registerConverter("", "Gemm", 13, 23, convertGemm);
  registerConverter("com.microsoft", "MatMulNBits", 1, 1, convertMatMulNBits);
}

} // namespace qslaw::onnx_import

//===----------------------------------------------------------------------===//
// DequantizeLinear on constant integer weights -> qslaw.dequantize
//===----------------------------------------------------------------------===//

namespace qslaw::onnx_import {
namespace {
/// Constant 2-D integer weights dequantized per block along axis 0 (opset 21
/// `block_size`, the layout of a MatMul weight [K, N]) or per column
/// (axis 1, 1-D scale): emitted as qslaw.dequantize over the transposed
/// [N, K] codes plus a transpose back, which qslaw-fuse-dequant folds into
/// qslaw.qmatmul when a MatMul consumes it. Signed codes are shifted by
/// 2^(bits-1) (code and zero point alike), which leaves q - z unchanged.
LogicalResult convertDequantizeLinear(NodeContext &nc, SmallVectorImpl<Value> &r) {
  DenseElementsAttr x = nc.constant(0), s = nc.constant(1);
  DenseElementsAttr z = nc.input(2) ? nc.constant(2) : DenseElementsAttr();
  if (!x || !s || (nc.input(2) && !z))
    return nc.emitError() << "only constant (initializer) inputs are supported";
  auto xt = cast<RankedTensorType>(x.getType());
  unsigned bits = xt.getElementType().getIntOrFloatBitWidth();
  if (xt.getRank() != 2 || (bits != 4 && bits != 8) ||
      !isa<FloatType>(s.getElementType()))
    return nc.emitError() << "supported: 2-D int4/uint4/int8/uint8 weights "
                             "with float scales, got "
                          << xt;
  bool isSigned = false;
  int64_t k = xt.getDimSize(0), n = xt.getDimSize(1);
  auto axisOr = nc.axis(nc.attrInt("axis", 1), 2, "attribute 'axis'");
  if (failed(axisOr))
    return failure();
  int64_t axis = *axisOr, bs = nc.attrInt("block_size", 0);
  auto st = cast<RankedTensorType>(s.getType());
  int64_t group;
  if (axis == 0 && bs > 0 && st.getRank() == 2 && st.getDimSize(1) == n &&
      st.getDimSize(0) == (k + bs - 1) / bs) {
    group = bs >= k ? 0 : bs;
  } else if (axis == 1 && st.getRank() == 1 && st.getDimSize(0) == n) {
    group = 0;
  } else {
    return nc.emitError() << "supported: block-wise along axis 0 (weight "
                             "[K, N], scale [ceil(K/block), N]) or per column "
                             "(axis 1, scale [N]); got axis "
                          << axis << ", block_size " << bs << ", scale " << st;
  }
  isSigned = nc.signedInputs.size() > 0 && nc.signedInputs[0];
  int64_t j = group == 0 ? 1 : (k + group - 1) / group;
  int64_t shift = isSigned ? (int64_t(1) << (bits - 1)) : 0;
  auto valueAt = [&](DenseElementsAttr a, int64_t i) {
    APInt v = *(a.getValues<APInt>().begin() + (a.isSplat() ? 0 : i));
    return (isSigned ? v.getSExtValue() : int64_t(v.getZExtValue())) + shift;
  };
  OpBuilder &b = nc.b;
  Type codeTy = b.getIntegerType(bits);
  SmallVector<APInt> codes;
  for (int64_t row = 0; row < n; ++row)
    for (int64_t col = 0; col < k; ++col)
      codes.push_back(APInt(bits, valueAt(x, col * n + row)));
  SmallVector<APFloat> scales;
  SmallVector<APInt> zeros;
  for (int64_t row = 0; row < n; ++row)
    for (int64_t g = 0; g < j; ++g) {
      int64_t idx = st.getRank() == 2 ? g * n + row : row;
      scales.push_back(*(s.getValues<APFloat>().begin() + idx));
      zeros.push_back(APInt(bits, z ? valueAt(z, idx) : shift));
    }
  bool symmetric = !z && isSigned;
  auto spec = ::mlir::qslaw::QuantSpecAttr::get(b.getContext(), bits, group,
                                                symmetric,
                                                ::mlir::qslaw::ScaleMode::Scale);
  Value codesV = arith::ConstantOp::create(
      b, nc.loc,
      DenseElementsAttr::get(RankedTensorType::get({n, k}, codeTy), codes));
  Value scalesV = arith::ConstantOp::create(
      b, nc.loc,
      DenseElementsAttr::get(RankedTensorType::get({n, j}, s.getElementType()),
                             scales));
  Value zerosV;
  if (!symmetric)
    zerosV = arith::ConstantOp::create(
        b, nc.loc,
        DenseElementsAttr::get(RankedTensorType::get({n, j}, codeTy), zeros));
  Value w = ::mlir::qslaw::DequantizeOp::create(
      b, nc.loc, RankedTensorType::get({n, k}, s.getElementType()), codesV,
      scalesV, zerosV, spec);
  r.push_back(transpose2D(b, nc.loc, w));
  return success();
}
} // namespace

void registerDequantizeConverters() {
  registerConverter("", "DequantizeLinear", 13, 23, convertDequantizeLinear);
}
} // namespace qslaw::onnx_import
