//===- GenericGrad.cpp - derivative of a linalg.generic ---------------------===//
//
// One rule covers elementwise, broadcasting, transposing, reducing and
// contracting generics: for y[out(d)] = combine_d f(x_0[m_0(d)], ...), the
// cotangent of x_i is a generic over the same iteration space whose output
// map is m_i (dims absent from m_i become reductions) and whose body
// recomputes f and multiplies dy by the forward-mode derivative of f with
// respect to x_i. `combine` is addf (sum), maximumf/minimumf (selection: the
// derivative flows where f equals the result) or nothing (elementwise).
//
//===----------------------------------------------------------------------===//
#include "Autodiff.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include <cmath>

using namespace mlir;

namespace mlir::qslaw::autodiff {

Value buildZeros(OpBuilder &b, Location loc, RankedTensorType type) {
  Value empty = tensor::EmptyOp::create(b, loc, type.getShape(),
                                        type.getElementType());
  Value zero = arith::ConstantOp::create(
      b, loc, b.getZeroAttr(type.getElementType()));
  return linalg::FillOp::create(b, loc, zero, empty).getResult(0);
}

Value buildAdd(OpBuilder &b, Location loc, Value a, Value c) {
  auto ty = cast<RankedTensorType>(a.getType());
  auto id = b.getMultiDimIdentityMap(ty.getRank());
  SmallVector<utils::IteratorType> its(ty.getRank(),
                                       utils::IteratorType::parallel);
  Value empty =
      tensor::EmptyOp::create(b, loc, ty.getShape(), ty.getElementType());
  return linalg::GenericOp::create(
             b, loc, ty, ValueRange{a, c}, empty,
             SmallVector<AffineMap>{id, id, id}, its,
             [](OpBuilder &nb, Location nl, ValueRange args) {
               linalg::YieldOp::create(
                   nb, nl, Value(arith::AddFOp::create(nb, nl, args[0], args[1])));
             })
      .getResult(0);
}

Value buildSumSquares(OpBuilder &b, Location loc, Value x) {
  auto ty = cast<RankedTensorType>(x.getType());
  // Accumulate in f32 at least (f64 stays f64).
  Type f32 = ty.getElementType().getIntOrFloatBitWidth() > 32
                 ? ty.getElementType()
                 : Type(b.getF32Type());
  auto scalarTy = RankedTensorType::get({}, f32);
  Value acc = buildZeros(b, loc, scalarTy);
  SmallVector<AffineMap> maps{b.getMultiDimIdentityMap(ty.getRank()),
                              AffineMap::get(ty.getRank(), 0, b.getContext())};
  SmallVector<utils::IteratorType> its(ty.getRank(),
                                       utils::IteratorType::reduction);
  return linalg::GenericOp::create(
             b, loc, scalarTy, x, acc, maps, its,
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value v = args[0];
               if (v.getType() != f32)
                 v = arith::ExtFOp::create(nb, nl, f32, v);
               Value sq = arith::MulFOp::create(nb, nl, v, v);
               linalg::YieldOp::create(
                   nb, nl, Value(arith::AddFOp::create(nb, nl, args[1], sq)));
             })
      .getResult(0);
}

namespace {

enum class Combine { None, Add, Max, Min };

/// Forward-mode derivative of scalar SSA values inside one block.
class Tangents {
public:
  Tangents(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  void seed(Value v) {
    tan[v] = arith::ConstantOp::create(b, loc, b.getFloatAttr(v.getType(), 1.0));
  }
  Value get(Value v) const { return tan.lookup(v); }

  /// Extends the tangents through `op` (already built in the new body).
  LogicalResult visit(Operation *op) {
    bool any = llvm::any_of(op->getOperands(),
                            [&](Value v) { return tan.contains(v); });
    if (!any)
      return success();
    if (op->getNumResults() != 1)
      return op->emitError("qslaw-make-train-step: no derivative rule for '")
             << op->getName() << "' in a linalg.generic body";
    Value r = op->getResult(0);
    auto t = [&](unsigned i) { return tan.lookup(op->getOperand(i)); };
    auto x = [&](unsigned i) { return op->getOperand(i); };
    Value out;
    if (isa<arith::AddFOp>(op)) {
      out = add(t(0), t(1));
    } else if (isa<arith::SubFOp>(op)) {
      out = add(t(0), neg(t(1)));
    } else if (isa<arith::MulFOp>(op)) {
      out = add(mul(t(0), x(1)), mul(x(0), t(1)));
    } else if (isa<arith::DivFOp>(op)) {
      // (ta - r * tb) / b
      Value num = add(t(0), neg(mul(r, t(1))));
      out = num ? Value(arith::DivFOp::create(b, loc, num, x(1))) : Value();
    } else if (isa<arith::NegFOp>(op)) {
      out = neg(t(0));
    } else if (isa<math::ExpOp>(op)) {
      out = mul(r, t(0));
    } else if (isa<math::LogOp>(op)) {
      out = arith::DivFOp::create(b, loc, t(0), x(0));
    } else if (isa<math::SqrtOp>(op)) {
      Value two = cst(r.getType(), 2.0);
      out = arith::DivFOp::create(
          b, loc, t(0), arith::MulFOp::create(b, loc, two, r));
    } else if (isa<math::RsqrtOp>(op)) {
      Value r3 = arith::MulFOp::create(
          b, loc, r, arith::MulFOp::create(b, loc, r, r));
      out = mul(mul(cst(r.getType(), -0.5), r3), t(0));
    } else if (isa<math::PowFOp>(op)) {
      // d(a^c) = c a^(c-1) da + a^c ln(a) dc
      Value one = cst(r.getType(), 1.0);
      Value da;
      if (t(0)) {
        Value cm1 = arith::SubFOp::create(b, loc, x(1), one);
        Value p = math::PowFOp::create(b, loc, x(0), cm1);
        da = mul(mul(x(1), p), t(0));
      }
      Value dc;
      if (t(1))
        dc = mul(mul(r, math::LogOp::create(b, loc, x(0))), t(1));
      out = add(da, dc);
    } else if (isa<math::ErfOp>(op)) {
      Value sq = arith::MulFOp::create(b, loc, x(0), x(0));
      Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, sq));
      out = mul(mul(cst(r.getType(), 2.0 / std::sqrt(M_PI)), e), t(0));
    } else if (isa<math::TanhOp>(op)) {
      Value one = cst(r.getType(), 1.0);
      out = mul(arith::SubFOp::create(b, loc, one,
                                      arith::MulFOp::create(b, loc, r, r)),
                t(0));
    } else if (isa<math::SinOp>(op)) {
      out = mul(math::CosOp::create(b, loc, x(0)), t(0));
    } else if (isa<math::CosOp>(op)) {
      out = neg(mul(math::SinOp::create(b, loc, x(0)), t(0)));
    } else if (isa<math::AbsFOp>(op)) {
      Value pos = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGE,
                                        x(0), cst(r.getType(), 0.0));
      out = arith::SelectOp::create(b, loc, pos, t(0), neg(t(0)));
    } else if (isa<arith::MaximumFOp, arith::MaxNumFOp, arith::MinimumFOp,
                   arith::MinNumFOp>(op)) {
      bool isMax = isa<arith::MaximumFOp, arith::MaxNumFOp>(op);
      Value first = arith::CmpFOp::create(
          b, loc, isMax ? arith::CmpFPredicate::OGE : arith::CmpFPredicate::OLE,
          x(0), x(1));
      out = arith::SelectOp::create(b, loc, first, orZero(t(0), r.getType()),
                                    orZero(t(1), r.getType()));
    } else if (auto sel = dyn_cast<arith::SelectOp>(op)) {
      if (t(0))
        return op->emitError("qslaw-make-train-step: select condition has a "
                             "derivative");
      out = arith::SelectOp::create(b, loc, x(0), orZero(t(1), r.getType()),
                                    orZero(t(2), r.getType()));
    } else if (isa<arith::ExtFOp>(op)) {
      out = arith::ExtFOp::create(b, loc, r.getType(), t(0));
    } else if (isa<arith::TruncFOp>(op)) {
      out = arith::TruncFOp::create(b, loc, r.getType(), t(0));
    } else if (isa<math::FmaOp>(op)) {
      out = add(add(mul(t(0), x(1)), mul(x(0), t(1))), t(2));
    } else if (isa<arith::CmpFOp, arith::FPToSIOp, arith::FPToUIOp>(op)) {
      return success(); // piecewise constant: no tangent
    } else {
      return op->emitError("qslaw-make-train-step: no derivative rule for '")
             << op->getName() << "' in a linalg.generic body";
    }
    if (out)
      tan[r] = out;
    return success();
  }

  Value orZero(Value t, Type ty) { return t ? t : cst(ty, 0.0); }

private:
  Value cst(Type ty, double v) {
    return arith::ConstantOp::create(b, loc, b.getFloatAttr(ty, v));
  }
  Value add(Value a, Value c) {
    if (!a)
      return c;
    if (!c)
      return a;
    return arith::AddFOp::create(b, loc, a, c);
  }
  Value mul(Value a, Value c) {
    if (!a || !c)
      return Value();
    return arith::MulFOp::create(b, loc, a, c);
  }
  Value neg(Value a) {
    return a ? Value(arith::NegFOp::create(b, loc, a)) : Value();
  }

  OpBuilder &b;
  Location loc;
  llvm::DenseMap<Value, Value> tan;
};

struct BodyShape {
  Combine combine = Combine::None;
  Operation *combiner = nullptr;
  Value f; // the combined (or yielded) scalar
  bool readsOut = false;
};

FailureOr<BodyShape> classify(linalg::GenericOp g) {
  Block &blk = g.getRegion().front();
  auto yield = cast<linalg::YieldOp>(blk.getTerminator());
  BlockArgument o = blk.getArguments().back();
  BodyShape s;
  s.f = yield.getOperand(0);
  if (g.getNumReductionLoops() == 0) {
    s.readsOut = !o.use_empty();
    return s;
  }
  Operation *c = s.f.getDefiningOp();
  if (!c || c->getBlock() != &blk || c->getNumOperands() != 2 ||
      !o.hasOneUse())
    return failure();
  int oi = c->getOperand(0) == o ? 0 : c->getOperand(1) == o ? 1 : -1;
  if (oi < 0)
    return failure();
  if (isa<arith::AddFOp>(c))
    s.combine = Combine::Add;
  else if (isa<arith::MaximumFOp, arith::MaxNumFOp>(c))
    s.combine = Combine::Max;
  else if (isa<arith::MinimumFOp, arith::MinNumFOp>(c))
    s.combine = Combine::Min;
  else
    return failure();
  s.combiner = c;
  s.f = c->getOperand(1 - oi);
  return s;
}

} // namespace

FailureOr<Value> buildGenericOperandGrad(OpBuilder &b, linalg::GenericOp g,
                                         unsigned operand, Value dOut) {
  Location loc = g.getLoc();
  if (g.getNumDpsInits() != 1)
    return g.emitError("qslaw-make-train-step: no derivative rule for a "
                       "linalg.generic with several results");
  FailureOr<BodyShape> shape = classify(g);
  if (failed(shape))
    return g.emitError("qslaw-make-train-step: no derivative rule for this "
                       "reduction (combiner must be addf, maximumf or "
                       "minimumf of the accumulator)");
  unsigned nIn = g.getNumDpsInputs();
  SmallVector<AffineMap> fwdMaps = g.getIndexingMapsArray();
  AffineMap outMap = fwdMaps[nIn];
  Value target = operand < nIn ? g.getDpsInputOperand(operand)->get()
                               : g.getDpsInitOperand(0)->get();
  auto tTy = dyn_cast<RankedTensorType>(target.getType());
  if (!tTy)
    return Value();
  AffineMap tMap = fwdMaps[operand];
  if (!tMap.isProjectedPermutation(/*allowZeroInResults=*/true))
    return g.emitError("qslaw-make-train-step: no derivative rule for "
                       "operand #")
           << operand << " with indexing map " << AffineMapAttr::get(tMap)
           << " (not a projected permutation)";
  // The init contributes only to sums (dy itself) or elementwise reads.
  bool targetIsInit = operand == nIn;
  if (targetIsInit && shape->combine != Combine::Add && !shape->readsOut)
    return Value();

  SmallVector<Value> ins{dOut};
  SmallVector<AffineMap> maps{outMap};
  for (unsigned j = 0; j < nIn; ++j) {
    ins.push_back(g.getDpsInputOperand(j)->get());
    maps.push_back(fwdMaps[j]);
  }
  bool needOut = shape->combine == Combine::Max ||
                 shape->combine == Combine::Min || shape->readsOut;
  if (needOut) {
    ins.push_back(shape->readsOut ? g.getDpsInitOperand(0)->get()
                                  : g.getResult(0));
    maps.push_back(outMap);
  }
  maps.push_back(tMap);
  llvm::SmallDenseSet<unsigned> kept;
  for (AffineExpr e : tMap.getResults())
    if (auto d = dyn_cast<AffineDimExpr>(e))
      kept.insert(d.getPosition());
  SmallVector<utils::IteratorType> its;
  for (unsigned d = 0; d < g.getNumLoops(); ++d)
    its.push_back(kept.contains(d) ? utils::IteratorType::parallel
                                   : utils::IteratorType::reduction);
  // Without reductions every output element is written once: no zero fill,
  // no read of the accumulator (cheaper, and elementwise fusion stays
  // simple).
  bool reduces = llvm::is_contained(its, utils::IteratorType::reduction);
  Value init = reduces ? buildZeros(b, loc, tTy)
                       : Value(tensor::EmptyOp::create(b, loc, tTy.getShape(),
                                                       tTy.getElementType()));

  Block &fwd = g.getRegion().front();
  LogicalResult bodyStatus = success();
  bool zero = false;
  auto gradOp = linalg::GenericOp::create(
      b, loc, tTy, ins, init, maps, its,
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        Value dy = args[0];
        Value acc = args.back();
        IRMapping m;
        for (unsigned j = 0; j < nIn; ++j)
          m.map(fwd.getArgument(j), args[1 + j]);
        Value outArg = needOut ? args[1 + nIn] : Value();
        if (outArg)
          m.map(fwd.getArguments().back(), outArg);
        Tangents tan(nb, nl);
        Value contribution;
        if (targetIsInit && shape->combine == Combine::Add) {
          contribution = dy;
        } else {
          tan.seed(targetIsInit ? outArg : args[1 + operand]);
          for (Operation &op : fwd.without_terminator()) {
            if (&op == shape->combiner)
              continue;
            Operation *c = nb.clone(op, m);
            if (failed(tan.visit(c))) {
              bodyStatus = failure();
              break;
            }
          }
          Value t = succeeded(bodyStatus) ? tan.get(m.lookupOrDefault(shape->f))
                                          : Value();
          if (!t) {
            zero = true;
            linalg::YieldOp::create(nb, nl, acc);
            return;
          }
          contribution = arith::MulFOp::create(nb, nl, dy, t);
          if (shape->combine == Combine::Max || shape->combine == Combine::Min) {
            Value hit = arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OEQ,
                                              m.lookupOrDefault(shape->f), outArg);
            contribution = arith::SelectOp::create(
                nb, nl, hit, contribution, tan.orZero(Value(), t.getType()));
          }
        }
        Type accTy = acc.getType();
        if (contribution.getType() != accTy) {
          unsigned from = contribution.getType().getIntOrFloatBitWidth();
          contribution =
              from > accTy.getIntOrFloatBitWidth()
                  ? Value(arith::TruncFOp::create(nb, nl, accTy, contribution))
                  : Value(arith::ExtFOp::create(nb, nl, accTy, contribution));
        }
        linalg::YieldOp::create(
            nb, nl,
            reduces ? Value(arith::AddFOp::create(nb, nl, acc, contribution))
                    : contribution);
      });
  if (failed(bodyStatus) || zero) {
    gradOp->erase();
    if (failed(bodyStatus))
      return failure();
    return Value();
  }
  return gradOp.getResult(0);
}

} // namespace mlir::qslaw::autodiff
