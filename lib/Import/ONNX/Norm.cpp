//===- Norm.cpp - LayerNormalization, RMS norms ---------------------------===//
#include "LinalgBuilders.h"
#include "NodeContext.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;

namespace qslaw::onnx_import {
namespace {

/// y = (x - mean?) / sqrt(mean((x - mean?)^2) + eps) * scale (+ bias),
/// normalised over the axes from `axis` to the end. RMS norms skip the mean.
LogicalResult normalize(NodeContext &nc, SmallVectorImpl<Value> &r, bool rms) {
  auto t = nc.type(0);
  int64_t rank = t.getRank();
  auto axisOr = nc.axis(nc.attrInt("axis", -1), rank, "attribute 'axis'");
  if (failed(axisOr))
    return failure();
  int64_t axis = *axisOr;
  float eps = nc.attrFloat("epsilon", 1e-5f);
  SmallVector<int64_t> axes;
  int64_t count = 1;
  for (int64_t a = axis; a < rank; ++a) {
    axes.push_back(a);
    count *= t.getDimSize(a);
  }
  OpBuilder &b = nc.b;
  Location loc = nc.loc;
  Type et = t.getElementType();
  auto add = [](OpBuilder &b, Location l, ValueRange a) -> Value {
    return arith::AddFOp::create(b, l, a[0], a[1]);
  };
  Value x = nc.input(0);
  Value centred = x;
  if (!rms) {
    Value sum = buildReduction(b, loc, x, axes, true, b.getFloatAttr(et, 0), add);
    centred = buildElementwise(
        b, loc, {x, sum}, t.getShape(), et,
        [&](OpBuilder &b, Location l, ValueRange a) -> Value {
          Value mean = arith::DivFOp::create(b, l, a[1],
                                             scalarConst(b, l, et, double(count)));
          return arith::SubFOp::create(b, l, a[0], mean);
        });
  }
  Value sq = buildElementwise(b, loc, centred, t.getShape(), et,
                              [](OpBuilder &b, Location l, ValueRange a) -> Value {
                                return arith::MulFOp::create(b, l, a[0], a[0]);
                              });
  Value ss = buildReduction(b, loc, sq, axes, true, b.getFloatAttr(et, 0), add);
  // Optional outputs of LayerNormalization: Mean and InvStdDev (keepdims).
  auto st = cast<RankedTensorType>(ss.getType());
  Value meanOut, invStdOut;
  if (!rms && nc.node.output_size() > 1) {
    Value sum = buildReduction(b, loc, x, axes, true, b.getFloatAttr(et, 0), add);
    meanOut = buildElementwise(b, loc, sum, st.getShape(), et,
                               [&](OpBuilder &b, Location l, ValueRange a) -> Value {
                                 return arith::DivFOp::create(
                                     b, l, a[0], scalarConst(b, l, et, double(count)));
                               });
    invStdOut = buildElementwise(
        b, loc, ss, st.getShape(), et,
        [&](OpBuilder &b, Location l, ValueRange a) -> Value {
          Value var = arith::DivFOp::create(b, l, a[0],
                                            scalarConst(b, l, et, double(count)));
          return math::RsqrtOp::create(
              b, l, arith::AddFOp::create(b, l, var, scalarConst(b, l, et, eps)));
        });
  }
  SmallVector<Value> ins{centred, ss, nc.input(1)};
  if (nc.input(2))
    ins.push_back(nc.input(2));
  r.push_back(buildElementwise(
      b, loc, ins, t.getShape(), et,
      [&](OpBuilder &b, Location l, ValueRange a) -> Value {
        Value var = arith::DivFOp::create(b, l, a[1],
                                          scalarConst(b, l, et, double(count)));
        Value inv = math::RsqrtOp::create(
            b, l, arith::AddFOp::create(b, l, var, scalarConst(b, l, et, eps)));
        Value y = arith::MulFOp::create(
            b, l, arith::MulFOp::create(b, l, a[0], inv), a[2]);
        return a.size() > 3 ? arith::AddFOp::create(b, l, y, a[3]).getResult() : y;
      }));
  if (meanOut) {
    r.push_back(meanOut);
    r.push_back(invStdOut);
  }
  return success();
}
} // namespace

void registerNormConverters() {
  registerConverter("", "LayerNormalization", 17, 23,
                    [](NodeContext &nc, SmallVectorImpl<Value> &r) {
                      return normalize(nc, r, false);
                    });
  // onnxruntime's contrib op (default domain) and ONNX opset 23's RMS norm.
  registerConverter("", "SimplifiedLayerNormalization", 1, 23,
                    [](NodeContext &nc, SmallVectorImpl<Value> &r) {
                      return normalize(nc, r, true);
                    });
  registerConverter("", "RMSNormalization", 23, 23,
                    [](NodeContext &nc, SmallVectorImpl<Value> &r) {
                      return normalize(nc, r, true);
                    });
}

} // namespace qslaw::onnx_import
