//===- Elementwise.cpp - ONNX elementwise, activation and norm ops --------===//
//
// One registration per op, keyed by opset range. Every op becomes a
// broadcasting linalg.generic over arith/math scalar ops.
//
//===----------------------------------------------------------------------===//
#include "LinalgBuilders.h"
#include "ConstEval.h"
#include "NodeContext.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

#include <cmath>

using namespace mlir;

namespace qslaw::onnx_import {
namespace {

constexpr int64_t kMaxOpset = 23;

using ScalarFn = std::function<Value(OpBuilder &, Location, ValueRange, Type)>;

/// Broadcasting n-ary op; `resultElem` null means the first input's type.
LogicalResult nary(NodeContext &nc, SmallVectorImpl<Value> &results,
                   const ScalarFn &fn, Type resultElem = {},
                   const ScalarEval &eval = nullptr) {
  SmallVector<ArrayRef<int64_t>> shapes;
  SmallVector<Value> ins;
  for (Value v : nc.inputs) {
    if (!v)
      continue;
    ins.push_back(v);
    shapes.push_back(cast<RankedTensorType>(v.getType()).getShape());
  }
  auto shape = broadcastShapes(shapes);
  if (!shape)
    return nc.emitError() << "input shapes do not broadcast";
  Type elem = cast<RankedTensorType>(ins[0].getType()).getElementType();
  Type out = resultElem ? resultElem : elem;
  // Constant inputs (shape arithmetic): evaluate at import time. Not a
  // weight: foldElementwise refuses large shapes, so their constants are
  // not copied out of their resources only to be dropped (a bf16 weight's
  // Cast to f32 stays an op, the weight stays bf16).
  int64_t outElements = 1;
  for (int64_t d : *shape)
    outElements *= d;
  if (eval && outElements <= kMaxFoldElements && allInputsConstant(nc)) {
    SmallVector<DenseElementsAttr> consts;
    for (unsigned i = 0; i < nc.inputs.size(); ++i)
      if (nc.inputs[i])
        consts.push_back(nc.constant(i));
    if (DenseElementsAttr folded = foldElementwise(consts, *shape, out, eval)) {
      results.push_back(materialize(nc, folded));
      return success();
    }
  }
  results.push_back(buildElementwise(
      nc.b, nc.loc, ins, *shape, out,
      [&](OpBuilder &b, Location l, ValueRange a) { return fn(b, l, a, elem); }));
  return success();
}

bool isFloat(Type t) { return isa<FloatType>(t); }

void binary(StringRef op, int64_t since,
            std::function<Value(OpBuilder &, Location, Value, Value, Type)> f,
            std::function<double(double, double)> ef = nullptr,
            std::function<int64_t(int64_t, int64_t)> ei = nullptr) {
  ScalarEval eval;
  if (ef || ei)
    eval = [ef, ei](ArrayRef<Scalar> a) {
      if (a[0].isFloat)
        return Scalar::ofFloat(ef ? ef(a[0].f, a[1].f) : 0.0);
      return Scalar::ofInt(ei ? ei(a[0].i, a[1].i) : 0);
    };
  registerConverter("", op, since, kMaxOpset,
                    [f, eval](NodeContext &nc, SmallVectorImpl<Value> &r) {
                      if (nc.inputs.size() != 2)
                        return LogicalResult(nc.emitError()
                                             << "expects 2 inputs, got "
                                             << nc.inputs.size());
                      return nary(
                          nc, r,
                          [&](OpBuilder &b, Location l, ValueRange a, Type t) {
                            return f(b, l, a[0], a[1], t);
                          },
                          {}, eval);
                    });
}

void unary(StringRef op, int64_t since,
           std::function<Value(OpBuilder &, Location, Value, Type)> f) {
  registerConverter("", op, since, kMaxOpset,
                    [f](NodeContext &nc, SmallVectorImpl<Value> &r) {
                      if (!isFloat(nc.type(0).getElementType()))
                        return LogicalResult(nc.emitError()
                                             << "expects a float input, got "
                                             << nc.type(0).getElementType());
                      return nary(nc, r, [&](OpBuilder &b, Location l,
                                             ValueRange a, Type t) {
                        return f(b, l, a[0], t);
                      });
                    });
}

void compare(StringRef op, arith::CmpFPredicate fp, arith::CmpIPredicate ip,
             std::function<bool(double, double)> cmp) {
  registerConverter(
      "", op, 13, kMaxOpset, [=](NodeContext &nc, SmallVectorImpl<Value> &r) {
        return nary(
            nc, r,
            [&](OpBuilder &b, Location l, ValueRange a, Type t) -> Value {
              if (isFloat(t))
                return arith::CmpFOp::create(b, l, fp, a[0], a[1]);
              return arith::CmpIOp::create(b, l, ip, a[0], a[1]);
            },
            nc.b.getI1Type(), [cmp](ArrayRef<Scalar> a) {
              auto v = [](const Scalar &s) { return s.isFloat ? s.f : double(s.i); };
              return Scalar::ofInt(cmp(v(a[0]), v(a[1])));
            });
      });
}

Value sigmoid(OpBuilder &b, Location l, Value x, Type t) {
  Value one = scalarConst(b, l, t, 1.0);
  Value e = math::ExpOp::create(b, l, arith::NegFOp::create(b, l, x));
  return arith::DivFOp::create(b, l, one, arith::AddFOp::create(b, l, one, e));
}
} // namespace

void registerElementwiseConverters() {
  binary("Add", 14, [](OpBuilder &b, Location l, Value x, Value y, Type t) -> Value {
    return isFloat(t) ? arith::AddFOp::create(b, l, x, y).getResult()
                      : arith::AddIOp::create(b, l, x, y).getResult();
  }, [](double x, double y) { return x + y; },
     [](int64_t x, int64_t y) { return x + y; });
  binary("Sub", 14, [](OpBuilder &b, Location l, Value x, Value y, Type t) -> Value {
    return isFloat(t) ? arith::SubFOp::create(b, l, x, y).getResult()
                      : arith::SubIOp::create(b, l, x, y).getResult();
  }, [](double x, double y) { return x - y; },
     [](int64_t x, int64_t y) { return x - y; });
  binary("Mul", 14, [](OpBuilder &b, Location l, Value x, Value y, Type t) -> Value {
    return isFloat(t) ? arith::MulFOp::create(b, l, x, y).getResult()
                      : arith::MulIOp::create(b, l, x, y).getResult();
  }, [](double x, double y) { return x * y; },
     [](int64_t x, int64_t y) { return x * y; });
  binary("Div", 14, [](OpBuilder &b, Location l, Value x, Value y, Type t) -> Value {
    return isFloat(t) ? arith::DivFOp::create(b, l, x, y).getResult()
                      : arith::DivSIOp::create(b, l, x, y).getResult();
  }, [](double x, double y) { return x / y; },
     [](int64_t x, int64_t y) { return y == 0 ? 0 : x / y; });
  // Pow mixes types (float base, integer exponent and the reverse).
  registerConverter(
      "", "Pow", 15, kMaxOpset, [](NodeContext &nc, SmallVectorImpl<Value> &r) {
        Type bt = nc.type(0).getElementType(), et = nc.type(1).getElementType();
        return nary(nc, r, [&](OpBuilder &b, Location l, ValueRange a, Type) -> Value {
          Value x = a[0], y = a[1];
          if (isFloat(bt)) {
            if (!isFloat(et))
              y = arith::SIToFPOp::create(b, l, bt, y);
            else if (et != bt)
              y = arith::TruncFOp::create(b, l, bt, y);
            return math::PowFOp::create(b, l, x, y);
          }
          if (isFloat(et)) // integer base, float exponent: round the result
            return arith::FPToSIOp::create(
                b, l, bt,
                math::PowFOp::create(b, l, arith::SIToFPOp::create(b, l, et, x), y));
          if (et != bt)
            y = et.getIntOrFloatBitWidth() < bt.getIntOrFloatBitWidth()
                    ? arith::ExtSIOp::create(b, l, bt, y).getResult()
                    : arith::TruncIOp::create(b, l, bt, y).getResult();
          return math::IPowIOp::create(b, l, x, y);
        }, bt);
      });
  for (auto [name, isMax] : {std::pair<StringRef, bool>{"Max", true}, {"Min", false}})
    registerConverter("", name, 13, kMaxOpset,
                      [isMax](NodeContext &nc, SmallVectorImpl<Value> &r) {
                        return nary(nc, r, [&](OpBuilder &b, Location l,
                                               ValueRange a, Type t) {
                          Value acc = a[0];
                          for (Value v : a.drop_front())
                            acc = isFloat(t)
                                      ? (isMax ? arith::MaximumFOp::create(b, l, acc, v).getResult()
                                               : arith::MinimumFOp::create(b, l, acc, v).getResult())
                                      : (isMax ? arith::MaxSIOp::create(b, l, acc, v).getResult()
                                               : arith::MinSIOp::create(b, l, acc, v).getResult());
                          return acc;
                        });
                      });
  compare("Equal", arith::CmpFPredicate::OEQ, arith::CmpIPredicate::eq,
          [](double x, double y) { return x == y; });
  compare("Less", arith::CmpFPredicate::OLT, arith::CmpIPredicate::slt,
          [](double x, double y) { return x < y; });
  compare("Greater", arith::CmpFPredicate::OGT, arith::CmpIPredicate::sgt,
          [](double x, double y) { return x > y; });
  compare("LessOrEqual", arith::CmpFPredicate::OLE, arith::CmpIPredicate::sle,
          [](double x, double y) { return x <= y; });
  compare("GreaterOrEqual", arith::CmpFPredicate::OGE, arith::CmpIPredicate::sge,
          [](double x, double y) { return x >= y; });
  for (auto [name, kind] : {std::pair<StringRef, int>{"And", 0}, {"Or", 1}, {"Xor", 2}})
    registerConverter(
        "", name, 7, kMaxOpset, [kind](NodeContext &nc, SmallVectorImpl<Value> &r) {
          return nary(
              nc, r,
              [&](OpBuilder &b, Location l, ValueRange a, Type) -> Value {
                if (kind == 0)
                  return arith::AndIOp::create(b, l, a[0], a[1]);
                if (kind == 1)
                  return arith::OrIOp::create(b, l, a[0], a[1]);
                return arith::XOrIOp::create(b, l, a[0], a[1]);
              },
              {}, [kind](ArrayRef<Scalar> a) {
                bool x = a[0].i, y = a[1].i;
                return Scalar::ofInt(kind == 0 ? (x && y) : kind == 1 ? (x || y) : (x != y));
              });
        });
  registerConverter("", "Not", 1, kMaxOpset,
                    [](NodeContext &nc, SmallVectorImpl<Value> &r) {
                      return nary(
                          nc, r,
                          [](OpBuilder &b, Location l, ValueRange a, Type t) -> Value {
                            return arith::XOrIOp::create(b, l, a[0],
                                                         scalarConst(b, l, t, 1));
                          },
                          {}, [](ArrayRef<Scalar> a) { return Scalar::ofInt(!a[0].i); });
                    });
  registerConverter("", "IsNaN", 13, kMaxOpset,
                    [](NodeContext &nc, SmallVectorImpl<Value> &r) {
                      return nary(
                          nc, r,
                          [](OpBuilder &b, Location l, ValueRange a, Type) -> Value {
                            return arith::CmpFOp::create(
                                b, l, arith::CmpFPredicate::UNO, a[0], a[0]);
                          },
                          nc.b.getI1Type(), [](ArrayRef<Scalar> a) {
                            return Scalar::ofInt(a[0].isFloat && std::isnan(a[0].f));
                          });
                    });
  registerConverter("", "Where", 16, kMaxOpset,
                    [](NodeContext &nc, SmallVectorImpl<Value> &r) {
                      return nary(
                          nc, r,
                          [](OpBuilder &b, Location l, ValueRange a, Type) -> Value {
                            return arith::SelectOp::create(b, l, a[0], a[1], a[2]);
                          },
                          nc.type(1).getElementType(), [](ArrayRef<Scalar> a) {
                            return a[0].i ? a[1] : a[2];
                          });
                    });

  unary("Sqrt", 13, [](OpBuilder &b, Location l, Value x, Type) -> Value {
    return math::SqrtOp::create(b, l, x);
  });
  unary("Reciprocal", 13, [](OpBuilder &b, Location l, Value x, Type t) -> Value {
    return arith::DivFOp::create(b, l, scalarConst(b, l, t, 1.0), x);
  });
  unary("Exp", 13, [](OpBuilder &b, Location l, Value x, Type) -> Value {
    return math::ExpOp::create(b, l, x);
  });
  unary("Erf", 13, [](OpBuilder &b, Location l, Value x, Type) -> Value {
    return math::ErfOp::create(b, l, x);
  });
  unary("Tanh", 13, [](OpBuilder &b, Location l, Value x, Type) -> Value {
    return math::TanhOp::create(b, l, x);
  });
  unary("Cos", 7, [](OpBuilder &b, Location l, Value x, Type) -> Value {
    return math::CosOp::create(b, l, x);
  });
  unary("Sin", 7, [](OpBuilder &b, Location l, Value x, Type) -> Value {
    return math::SinOp::create(b, l, x);
  });
  unary("Sigmoid", 13, sigmoid);
  unary("Relu", 14, [](OpBuilder &b, Location l, Value x, Type t) -> Value {
    return arith::MaximumFOp::create(b, l, x, scalarConst(b, l, t, 0.0));
  });
  registerConverter("", "Neg", 13, kMaxOpset,
                    [](NodeContext &nc, SmallVectorImpl<Value> &r) {
                      return nary(nc, r, [](OpBuilder &b, Location l,
                                            ValueRange a, Type t) -> Value {
                        if (isFloat(t))
                          return arith::NegFOp::create(b, l, a[0]);
                        return arith::SubIOp::create(
                            b, l, scalarConst(b, l, t, 0), a[0]);
                      });
                    });
  registerConverter(
      "", "Gelu", 20, kMaxOpset, [](NodeContext &nc, SmallVectorImpl<Value> &r) {
        std::string approx = nc.attrString("approximate", "none");
        if (approx != "none" && approx != "tanh")
          return LogicalResult(nc.emitError()
                               << "attribute 'approximate' must be 'none' or "
                                  "'tanh', got '"
                               << approx << "'");
        bool tanh = approx == "tanh";
        return nary(nc, r, [&](OpBuilder &b, Location l, ValueRange a,
                               Type t) -> Value {
          Value x = a[0];
          Value half = scalarConst(b, l, t, 0.5), one = scalarConst(b, l, t, 1.0);
          Value inner;
          if (tanh) {
            // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            Value x3 = arith::MulFOp::create(
                b, l, x, arith::MulFOp::create(b, l, x, x));
            Value s = arith::AddFOp::create(
                b, l, x,
                arith::MulFOp::create(b, l, scalarConst(b, l, t, 0.044715), x3));
            inner = math::TanhOp::create(
                b, l,
                arith::MulFOp::create(
                    b, l, scalarConst(b, l, t, 0.7978845608028654), s));
          } else {
            inner = math::ErfOp::create(
                b, l,
                arith::MulFOp::create(
                    b, l, x, scalarConst(b, l, t, 0.7071067811865476)));
          }
          return arith::MulFOp::create(
              b, l, arith::MulFOp::create(b, l, half, x),
              arith::AddFOp::create(b, l, one, inner));
        });
      });
  registerConverter(
      "", "Cast", 13, kMaxOpset, [](NodeContext &nc, SmallVectorImpl<Value> &r) {
        int64_t to = nc.attrInt("to", -1);
        Type dst;
        using TP = onnx::TensorProto;
        switch (to) {
        case TP::FLOAT: dst = nc.b.getF32Type(); break;
        case TP::FLOAT16: dst = nc.b.getF16Type(); break;
        case TP::BFLOAT16: dst = nc.b.getBF16Type(); break;
        case TP::INT64: dst = nc.b.getI64Type(); break;
        case TP::INT32: dst = nc.b.getI32Type(); break;
        case TP::BOOL: dst = nc.b.getI1Type(); break;
        default:
          return LogicalResult(nc.emitError()
                               << "attribute 'to' = " << to
                               << " is not a supported target type");
        }
        Value in = nc.inputs.empty() ? Value() : nc.inputs[0];
        if (failed(nary(
            nc, r,
            [&](OpBuilder &b, Location l, ValueRange a, Type src) -> Value {
              Value x = a[0];
              if (src == dst)
                return x;
              auto sf = dyn_cast<FloatType>(src);
              auto df = dyn_cast<FloatType>(dst);
              if (sf && df)
                return sf.getWidth() < df.getWidth()
                           ? arith::ExtFOp::create(b, l, dst, x).getResult()
                           : arith::TruncFOp::create(b, l, dst, x).getResult();
              if (sf)
                return dst.isInteger(1)
                           ? arith::CmpFOp::create(b, l, arith::CmpFPredicate::UNE,
                                                   x, scalarConst(b, l, src, 0))
                                 .getResult()
                           : arith::FPToSIOp::create(b, l, dst, x).getResult();
              if (df)
                return src.isInteger(1)
                           ? arith::UIToFPOp::create(b, l, dst, x).getResult()
                           : arith::SIToFPOp::create(b, l, dst, x).getResult();
              unsigned sw = src.getIntOrFloatBitWidth(),
                       dw = dst.getIntOrFloatBitWidth();
              if (dw == 1)
                return arith::CmpIOp::create(b, l, arith::CmpIPredicate::ne, x,
                                             scalarConst(b, l, src, 0));
              if (sw < dw)
                return sw == 1 ? arith::ExtUIOp::create(b, l, dst, x).getResult()
                               : arith::ExtSIOp::create(b, l, dst, x).getResult();
              return arith::TruncIOp::create(b, l, dst, x);
            },
            dst, [dst](ArrayRef<Scalar> a) {
              const Scalar &s = a[0];
              if (isFloat(dst))
                return Scalar::ofFloat(s.isFloat ? s.f : double(s.i));
              if (dst.isInteger(1))
                return Scalar::ofInt(s.isFloat ? s.f != 0 : s.i != 0);
              return Scalar::ofInt(s.isFloat ? int64_t(s.f) : s.i);
            })))
          return failure();
        // A small f16/bf16 weight widened at import keeps its initializer's
        // name, like the weight itself: the quantiser, the parameter
        // selection and the ONNX export know it by that name.
        auto folded = r.back().getDefiningOp<arith::ConstantOp>();
        auto source = in ? in.getDefiningOp<arith::ConstantOp>() : nullptr;
        auto srcFloat = in ? dyn_cast<FloatType>(cast<ShapedType>(in.getType()).getElementType())
                           : FloatType();
        if (folded && source && folded != source && srcFloat &&
            isa<FloatType>(dst) &&
            srcFloat.getWidth() < dst.getIntOrFloatBitWidth())
          if (auto name = source->getAttrOfType<StringAttr>("qslaw.name"))
            folded->setAttr("qslaw.name", name);
        return success();
      });
}

} // namespace qslaw::onnx_import
