//===- ContractionsToLibrary.cpp - f32 contractions -> library GEMM calls -===//
//
// IREE's ukernel pattern applied to dense float contractions: a GEMM library
// (chosen by bench/gemm_libraries.cpp, see docs/Pipeline.md) runs large
// matmuls near the machine's peak, which scalar or even vectorised codegen
// does not reach. Every linalg op that is a (batched) matmul - named
// matmul/batch_matmul, their transposed forms, and generics whose body is
// `out + a * b` over projected permutations (what the AD pass produces) -
// becomes one call of `qslaw_ukernel_sgemm_f32` over memrefs, provided it
// is f32, statically shaped and at least `min-flops` large. Transposes are
// BLAS flags, not copies; a `linalg.transpose` of the last two dims that
// feeds an operand is read through.
//
// The language-model head of a training step needs only the rows whose
// next-token label counts: its logits feed nothing but qslaw.cross_entropy
// and its gradient, and its input gradient's left operand is that gradient,
// zero on every ignored position (image tokens, padding: most of a LLaVA
// sequence). Such GEMMs call `qslaw_ukernel_sgemm_rows_f32` with a row mask
// built from the labels at run time; the library then multiplies only the
// rows that count (the others are zero, as the full GEMM would leave the
// input gradient's, and as the loss never reads the logits').
//
//===----------------------------------------------------------------------===//
#include "../QSLAWToUkernels/UkernelCalls.h"
#include "qslaw/Conversion/Passes.h"
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h"

#include "mlir/Dialect/Linalg/IR/LinalgInterfaces.h"
#include "mlir/IR/Matchers.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_CONTRACTIONSTOLIBRARY
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;
using namespace mlir::qslaw;

namespace {

/// One GEMM operand: the tensor read (after looking through a transpose),
/// how many of its leading dims are batch dims and how many dims follow in
/// the first of its two dim blocks, and whether those blocks are stored
/// transposed relative to the GEMM's [rows of C, K] / [K, cols of C].
struct Operand {
  Value tensor;
  int64_t numBatch = 0, numFirst = 0;
  bool trans = false;
};

/// `C[B, R, C] (+)= sum_K L[B, R, K] * R[B, K, C]` where each of B, R, C, K
/// is a contiguous block of loop dims (collapsed into one at the call).
struct Gemm {
  Operand lhs, rhs;
  int64_t numBatch = 0, numRows = 0; // C's leading blocks
  int64_t batch = 1, rows = 1, cols = 1, depth = 1;
  bool accumulate = true; // false when the init is a zero fill
};

bool isStaticF32(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  return t && t.hasStaticShape() && t.getElementType().isF32();
}


/// The body is `yield out + a * b` (either operand order) over the block
/// arguments `a` and `b`, nothing else.
bool isMulAddBody(linalg::LinalgOp op, Value a, Value b) {
  Block *body = op.getBlock();
  if (!llvm::hasNItems(body->without_terminator(), 2))
    return false;
  auto yield = cast<linalg::YieldOp>(body->getTerminator());
  auto add = yield.getOperand(0).getDefiningOp<arith::AddFOp>();
  if (!add)
    return false;
  Value acc = body->getArguments().back(), prod;
  if (add.getLhs() == acc)
    prod = add.getRhs();
  else if (add.getRhs() == acc)
    prod = add.getLhs();
  else
    return false;
  auto mul = prod.getDefiningOp<arith::MulFOp>();
  if (!mul || mul->getBlock() != body)
    return false;
  return (mul.getLhs() == a && mul.getRhs() == b) ||
         (mul.getLhs() == b && mul.getRhs() == a);
}

bool isZeroFill(Value init) {
  auto fill = init.getDefiningOp<linalg::FillOp>();
  return fill && matchPattern(fill.getInputs()[0], m_AnyZeroFloat());
}

using Dims = SmallVector<unsigned>;

Dims dimsOf(AffineMap m) {
  Dims d;
  for (AffineExpr e : m.getResults())
    d.push_back(cast<AffineDimExpr>(e).getPosition());
  return d;
}

Dims concat(ArrayRef<unsigned> a, ArrayRef<unsigned> b) {
  Dims r(a);
  r.append(b.begin(), b.end());
  return r;
}

/// Operand `v` indexed by loop dims `res` as [batch, outer, inner] or
/// [batch, inner, outer] (transposed), each a contiguous block.
std::optional<Operand> matchOperand(Value v, ArrayRef<unsigned> res,
                                    ArrayRef<unsigned> batch,
                                    ArrayRef<unsigned> outer,
                                    ArrayRef<unsigned> inner) {
  if (res.size() != batch.size() + outer.size() + inner.size() ||
      res.take_front(batch.size()) != batch)
    return std::nullopt;
  ArrayRef<unsigned> rest = res.drop_front(batch.size());
  Operand o{v, int64_t(batch.size())};
  if (rest == ArrayRef<unsigned>(concat(outer, inner))) {
    o.trans = false;
    o.numFirst = outer.size();
  } else if (rest == ArrayRef<unsigned>(concat(inner, outer))) {
    o.trans = true;
    o.numFirst = inner.size();
  } else {
    return std::nullopt;
  }
  // A transpose of the last two (single-dim) blocks is a BLAS flag.
  int64_t rank = res.size();
  auto t = v.getDefiningOp<linalg::TransposeOp>();
  if (!t || outer.size() != 1 || inner.size() != 1 ||
      !isStaticF32(t.getInput()))
    return o;
  ArrayRef<int64_t> perm = t.getPermutation();
  for (int64_t i = 0; i + 2 < rank; ++i)
    if (perm[i] != i)
      return o;
  if (perm[rank - 2] != rank - 1 || perm[rank - 1] != rank - 2)
    return o;
  o.tensor = t.getInput();
  o.trans = !o.trans;
  return o;
}

/// The dims of `all` that are in `set`, in the order of `all`; whether
/// they form one contiguous run of it.
bool contiguousIn(ArrayRef<unsigned> all, ArrayRef<unsigned> set,
                  Dims &ordered) {
  ordered.clear();
  int64_t first = -1, last = -1;
  for (auto [i, d] : llvm::enumerate(all))
    if (llvm::is_contained(set, d)) {
      if (first < 0)
        first = i;
      last = i;
      ordered.push_back(d);
    }
  return ordered.size() == set.size() && last - first + 1 == int64_t(set.size());
}

std::optional<Gemm> matchGemm(linalg::LinalgOp op) {
  if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() < 2 ||
      op.getNumDpsInits() != 1 || op->getNumResults() != 1)
    return std::nullopt;
  // The AD pass's gradient generics keep the forward's operands, some of
  // them unread by the body: the two that the body reads are the GEMM's.
  Block *body = op.getBlock();
  SmallVector<unsigned> used;
  for (unsigned i = 0, e = op.getNumDpsInputs(); i < e; ++i)
    if (!body->getArgument(i).use_empty())
      used.push_back(i);
  if (used.size() != 2)
    return std::nullopt;
  Value in[2] = {op.getDpsInputs()[used[0]], op.getDpsInputs()[used[1]]};
  Value init = op.getDpsInits()[0];
  for (Value v : {in[0], in[1], init})
    if (!isStaticF32(v))
      return std::nullopt;
  SmallVector<AffineMap> all = op.getIndexingMapsArray();
  SmallVector<AffineMap> maps{all[used[0]], all[used[1]], all.back()};
  for (AffineMap m : maps)
    if (!m.isProjectedPermutation(/*allowZeroInResults=*/false))
      return std::nullopt;
  if (!isMulAddBody(op, body->getArgument(used[0]),
                    body->getArgument(used[1])))
    return std::nullopt;
  FailureOr<linalg::ContractionDimensions> cd =
      linalg::inferContractionDims(maps);
  if (failed(cd) || op.getNumLoops() != cd->batch.size() + cd->m.size() +
                                            cd->n.size() + cd->k.size())
    return std::nullopt;
  Dims in0 = dimsOf(maps[0]), in1 = dimsOf(maps[1]), out = dimsOf(maps[2]);
  // C = [batch, row block, col block]; rows come from whichever input
  // holds C's first non-batch dim.
  Dims batch(out.begin(), out.begin() + cd->batch.size());
  if (!llvm::all_of(batch, [&](unsigned d) {
        return llvm::is_contained(cd->batch, d);
      }))
    return std::nullopt;
  ArrayRef<unsigned> outRest = ArrayRef<unsigned>(out).drop_front(batch.size());
  if (outRest.empty())
    return std::nullopt;
  bool rowsAreM = llvm::is_contained(cd->m, outRest.front());
  ArrayRef<unsigned> rowSet(rowsAreM ? cd->m : cd->n),
      colSet(rowsAreM ? cd->n : cd->m);
  Dims rows(outRest.take_front(rowSet.size())),
      cols(outRest.drop_front(rowSet.size()));
  Dims check;
  if (!contiguousIn(rows, rowSet, check) || !contiguousIn(cols, colSet, check))
    return std::nullopt;
  const Dims &lhsRes = rowsAreM ? in0 : in1, &rhsRes = rowsAreM ? in1 : in0;
  Value lhsV = in[rowsAreM ? 0 : 1], rhsV = in[rowsAreM ? 1 : 0];
  // K in the order the left operand stores it; the right must agree.
  Dims depth;
  if (!contiguousIn(lhsRes, cd->k, depth))
    return std::nullopt;
  auto lhs = matchOperand(lhsV, lhsRes, batch, rows, depth);
  auto rhs = matchOperand(rhsV, rhsRes, batch, depth, cols);
  if (!lhs || !rhs)
    return std::nullopt;
  Gemm g;
  g.lhs = *lhs;
  g.rhs = *rhs;
  g.numBatch = batch.size();
  g.numRows = rows.size();
  SmallVector<int64_t> bounds = op.getStaticLoopRanges();
  for (unsigned d : batch)
    g.batch *= bounds[d];
  for (unsigned d : rows)
    g.rows *= bounds[d];
  for (unsigned d : cols)
    g.cols *= bounds[d];
  for (unsigned d : depth)
    g.depth *= bounds[d];
  g.accumulate = !isZeroFill(op.getDpsInits()[0]);
  return g;
}

/// Reassociation of `rank` dims into consecutive groups of the given sizes
/// (empty groups dropped).
SmallVector<ReassociationIndices> groups(ArrayRef<int64_t> sizes) {
  SmallVector<ReassociationIndices> r;
  int64_t d = 0;
  for (int64_t n : sizes) {
    if (n == 0)
      continue;
    ReassociationIndices g;
    for (int64_t i = 0; i < n; ++i)
      g.push_back(d++);
    r.push_back(g);
  }
  return r;
}

/// `v` (dims [batch block, first block, second block]) as the rank-3
/// tensor [B, F, S]: blocks collapse, an absent batch becomes a unit dim.
/// Metadata only.
Value as3D(OpBuilder &b, Location loc, Value v, int64_t numBatch,
           int64_t numFirst) {
  auto ty = cast<RankedTensorType>(v.getType());
  ArrayRef<int64_t> shape = ty.getShape();
  int64_t numSecond = ty.getRank() - numBatch - numFirst;
  auto prod = [&](int64_t from, int64_t n) {
    int64_t p = 1;
    for (int64_t i = from; i < from + n; ++i)
      p *= shape[i];
    return p;
  };
  int64_t bs = prod(0, numBatch), fs = prod(numBatch, numFirst),
          ss = prod(numBatch + numFirst, numSecond);
  Type elem = ty.getElementType();
  auto collapseTo = [&](Value x, ArrayRef<int64_t> to,
                        ArrayRef<int64_t> sizes) -> Value {
    auto toTy = RankedTensorType::get(to, elem);
    if (cast<RankedTensorType>(x.getType()).getRank() == toTy.getRank())
      return x;
    return tensor::CollapseShapeOp::create(b, loc, toTy, x, groups(sizes));
  };
  if (numBatch > 0)
    return collapseTo(v, {bs, fs, ss}, {numBatch, numFirst, numSecond});
  Value two = collapseTo(v, {fs, ss}, {numFirst, numSecond});
  return tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get({1, fs, ss}, elem), two,
      SmallVector<ReassociationIndices>{{0, 1}, {2}});
}

/// The inverse of as3D for a result of type `to`.
Value from3D(OpBuilder &b, Location loc, Value v, RankedTensorType to,
             int64_t numBatch, int64_t numFirst) {
  int64_t numSecond = to.getRank() - numBatch - numFirst;
  auto three = cast<RankedTensorType>(v.getType());
  if (numBatch > 0) {
    if (to.getRank() == 3)
      return v;
    return tensor::ExpandShapeOp::create(b, loc, to, v,
                                         groups({numBatch, numFirst, numSecond}));
  }
  auto twoTy = RankedTensorType::get(three.getShape().drop_front(),
                                     three.getElementType());
  Value two = tensor::CollapseShapeOp::create(
      b, loc, twoTy, v, SmallVector<ReassociationIndices>{{0, 1}, {2}});
  if (to.getRank() == 2)
    return two;
  return tensor::ExpandShapeOp::create(b, loc, to, two,
                                       groups({numFirst, numSecond}));
}

/// The [B, T] row block of a cross-entropy's logits inside the GEMM
/// result they are sliced from ([B*T, V] expanded to [B, T, V], then
/// positions [off, off + T') of T), and the labels of those positions.
struct LabelRows {
  Value labels;       // [B, T'], i64 or i32
  int64_t ignore = -100, vocab = 0;
  int64_t batch = 0, tokens = 0, offset = 0;
  /// The input gradient's [B, T', V] cross-entropy gradient before it was
  /// placed into zeros: the GEMM reads it directly, so the zero-filled
  /// [B, T, V] copy is never made.
  Value unpadded;
  /// The head's forward (its unselected rows are read by nobody: the loss
  /// ops skip ignored rows, so they need no zeros).
  bool logits = false;
  /// The input gradient's cross-entropy gradient, when this GEMM is its only
  /// reader.
  Operation *soleGradient = nullptr;

  /// For logits of shape `full` = [B, T, V]; labels still to be found.
  static LabelRows of(ArrayRef<int64_t> full) {
    LabelRows r;
    r.batch = full[0];
    r.tokens = full[1];
    r.vocab = full[2];
    return r;
  }
};

/// Whether `slice` takes [0, off, 0] sizes [B, T', V] with unit strides of
/// its [B, T, V] source; sets `off`.
bool isTokenSlice(ArrayRef<int64_t> offsets, ArrayRef<int64_t> sizes,
                  ArrayRef<int64_t> strides, ArrayRef<int64_t> full,
                  int64_t &off) {
  if (offsets.size() != 3 || full.size() != 3 || offsets[0] != 0 ||
      offsets[2] != 0 || sizes[0] != full[0] || sizes[2] != full[2] ||
      llvm::any_of(strides, [](int64_t s) { return s != 1; }) ||
      ShapedType::isDynamic(offsets[1]) || ShapedType::isDynamic(sizes[1]))
    return false;
  off = offsets[1];
  return true;
}

/// Records the labels of a cross-entropy (or its gradient) reading
/// `logits`; all must agree.
bool addLossReader(Operation *user, Value logits, LabelRows &r) {
  Value labels;
  int64_t ignore;
  if (auto ce = dyn_cast<CrossEntropyOp>(user)) {
    if (ce.getLogits() != logits)
      return false;
    labels = ce.getLabels();
    ignore = ce.getIgnoreIndex();
  } else if (auto ceg = dyn_cast<CrossEntropyGradOp>(user)) {
    if (ceg.getLogits() != logits)
      return false;
    labels = ceg.getLabels();
    ignore = ceg.getIgnoreIndex();
  } else {
    return false;
  }
  if (r.labels && (r.labels != labels || r.ignore != ignore))
    return false;
  r.labels = labels;
  r.ignore = ignore;
  return true;
}

/// `v` ([B*T, V]) expanded to [B, T, V].
tensor::ExpandShapeOp tokenExpand(Value v) {
  if (!v.hasOneUse())
    return nullptr;
  auto e = dyn_cast<tensor::ExpandShapeOp>(*v.getUsers().begin());
  if (!e || e.getResultType().getRank() != 3 ||
      e.getReassociationIndices() !=
          SmallVector<ReassociationIndices>{{0, 1}, {2}})
    return nullptr;
  return e;
}

/// The forward GEMM of the head: its [B*T, V] result is read only as the
/// logits of cross-entropies (through the expand to [B, T, V] and one
/// token slice).
std::optional<LabelRows> logitsRows(Value result) {
  tensor::ExpandShapeOp e = tokenExpand(result);
  if (!e)
    return std::nullopt;
  ArrayRef<int64_t> full = e.getResultType().getShape();
  LabelRows r = LabelRows::of(full);
  bool sliced = false;
  for (Operation *user : e->getUsers()) {
    if (auto s = dyn_cast<tensor::ExtractSliceOp>(user)) {
      int64_t off;
      if (sliced ||
          !isTokenSlice(s.getStaticOffsets(), s.getStaticSizes(),
                        s.getStaticStrides(), full, off) ||
          s->use_empty())
        return std::nullopt;
      sliced = true;
      r.offset = off;
      for (Operation *reader : s->getUsers())
        if (!addLossReader(reader, s.getResult(), r))
          return std::nullopt;
      continue;
    }
    if (!addLossReader(user, e.getResult(), r))
      return std::nullopt;
  }
  if (!r.labels)
    return std::nullopt;
  r.logits = true;
  return r;
}

/// The input-gradient GEMM of the head: its left operand is a
/// cross-entropy gradient ([B, T', V], placed at a token offset into zeros
/// of [B, T, V]) collapsed to [B*T, V].
std::optional<LabelRows> gradientRows(Value lhs) {
  auto c = lhs.getDefiningOp<tensor::CollapseShapeOp>();
  if (!c || c.getSrcType().getRank() != 3 ||
      c.getReassociationIndices() !=
          SmallVector<ReassociationIndices>{{0, 1}, {2}})
    return std::nullopt;
  ArrayRef<int64_t> full = c.getSrcType().getShape();
  LabelRows r = LabelRows::of(full);
  Value grad = c.getSrc();
  if (auto ins = grad.getDefiningOp<tensor::InsertSliceOp>()) {
    if (!isZeroFill(ins.getDest()) ||
        !isTokenSlice(ins.getStaticOffsets(), ins.getStaticSizes(),
                      ins.getStaticStrides(), full, r.offset))
      return std::nullopt;
    grad = ins.getSource();
    r.unpadded = grad;
  }
  auto ceg = grad.getDefiningOp<CrossEntropyGradOp>();
  if (!ceg)
    return std::nullopt;
  r.labels = ceg.getLabels();
  r.ignore = ceg.getIgnoreIndex();
  // Read only through the (insert and) collapse into this GEMM.
  if (ceg->hasOneUse() && c->hasOneUse() &&
      (grad == c.getSrc() || c.getSrc().hasOneUse()))
    r.soleGradient = ceg;
  return r;
}

/// Whether `labels` is available at `op`, moving its defining op (pure,
/// with operands available there) up to just before `op` if needed.
bool labelsBefore(Value labels, Operation *op) {
  Operation *def = labels.getDefiningOp();
  if (!def)
    return labels.getParentBlock() == op->getBlock() ||
           labels.getParentBlock()->getParentOp()->isProperAncestor(op);
  if (def->getBlock() != op->getBlock())
    return false;
  if (def->isBeforeInBlock(op))
    return true;
  if (!isPure(def) || def->getNumRegions() != 0)
    return false;
  for (Value v : def->getOperands()) {
    Operation *d = v.getDefiningOp();
    if (d ? (d->getBlock() != op->getBlock() || !d->isBeforeInBlock(op))
          : v.getParentBlock() != op->getBlock())
      return false;
  }
  def->moveBefore(op);
  return true;
}

/// i8 [B*T]: 1 where the row's label counts (not `ignore`, inside
/// [0, V)), 0 elsewhere, positions outside the slice included.
Value rowMask(OpBuilder &b, Location loc, const LabelRows &r) {
  auto labelsTy = cast<RankedTensorType>(r.labels.getType());
  Type i8 = b.getI8Type();
  auto sliceTy = RankedTensorType::get(labelsTy.getShape(), i8);
  Value empty = tensor::EmptyOp::create(b, loc, sliceTy.getShape(), i8);
  AffineMap id = b.getMultiDimIdentityMap(2);
  Type lt = labelsTy.getElementType();
  auto valid = linalg::GenericOp::create(
      b, loc, sliceTy, ValueRange{r.labels}, ValueRange{empty},
      ArrayRef<AffineMap>{id, id},
      SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
      [&](OpBuilder &nb, Location l, ValueRange a) {
        auto c = [&](int64_t v) {
          return arith::ConstantOp::create(nb, l, IntegerAttr::get(lt, v));
        };
        using P = arith::CmpIPredicate;
        Value ok = arith::AndIOp::create(
            nb, l,
            arith::CmpIOp::create(nb, l, P::ne, a[0], c(r.ignore)),
            arith::AndIOp::create(
                nb, l, arith::CmpIOp::create(nb, l, P::sge, a[0], c(0)),
                arith::CmpIOp::create(nb, l, P::slt, a[0], c(r.vocab))));
        linalg::YieldOp::create(
            nb, l, arith::ExtUIOp::create(nb, l, nb.getI8Type(), ok).getResult());
      });
  Value mask = valid.getResult(0);
  if (labelsTy.getDimSize(1) != r.tokens) {
    Value zero = arith::ConstantOp::create(b, loc, b.getI8IntegerAttr(0));
    Value full = linalg::FillOp::create(
                     b, loc, zero,
                     ValueRange{tensor::EmptyOp::create(
                         b, loc, ArrayRef<int64_t>{r.batch, r.tokens}, i8)})
                     .getResult(0);
    mask = tensor::InsertSliceOp::create(
        b, loc, mask, full, ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(r.offset)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(r.batch),
                               b.getIndexAttr(labelsTy.getDimSize(1))},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
  }
  return tensor::CollapseShapeOp::create(
      b, loc, RankedTensorType::get({r.batch * r.tokens}, i8), mask,
      SmallVector<ReassociationIndices>{{0, 1}});
}

struct ContractionsToLibraryPass
    : qslaw::impl::ContractionsToLibraryBase<ContractionsToLibraryPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (minFlops < 0) {
      module.emitError("qslaw-lower-contractions-to-library: min-flops must "
                       "be >= 0, got ")
          << static_cast<int64_t>(minFlops);
      return signalPassFailure();
    }
    if (failed(checkNumThreads(module, "qslaw-lower-contractions-to-library",
                               numThreads)))
      return signalPassFailure();
    SmallVector<linalg::LinalgOp> work;
    module.walk([&](linalg::LinalgOp op) {
      if (std::optional<Gemm> g = matchGemm(op))
        if (2.0 * g->batch * g->rows * g->cols * g->depth >= double(minFlops))
          work.push_back(op);
    });
    IRRewriter b(module.getContext());
    Type f32 = b.getF32Type();
    for (linalg::LinalgOp op : work) {
      // Matched again now: a GEMM feeding another directly (LoRA's x A^T
      // then B^T) has had its producer replaced since the walk.
      std::optional<Gemm> matched = matchGemm(op);
      if (!matched)
        continue;
      Gemm &g = *matched;
      Location loc = op.getLoc();
      b.setInsertionPoint(op);
      auto resTy = cast<RankedTensorType>(op->getResult(0).getType());
      OutBuffer out = newOutBuffer(b, loc, {g.batch, g.rows, g.cols}, f32);
      if (g.accumulate) {
        // C += A.B: the call accumulates into a copy of the init.
        // Read through asDynBuffer like the operands: an untagged to_buffer
        // could be merged by CSE with an earlier read of the same tensor.
        Value init =
            as3D(b, loc, op.getDpsInits()[0], g.numBatch, g.numRows);
        memref::CopyOp::create(b, loc, asDynBuffer(b, loc, init), out.alloc);
      }
      auto i32 = [&](int64_t v) -> Value {
        return arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(v));
      };
      // The head of a training step: only the rows whose label counts.
      std::optional<LabelRows> headRows;
      if (labelRows && g.batch == 1 && g.numBatch == 0 && !g.lhs.trans &&
          g.lhs.numBatch == 0 &&
          cast<RankedTensorType>(op->getResult(0).getType()).getRank() == 2) {
        headRows = logitsRows(op->getResult(0));
        if (!headRows)
          headRows = gradientRows(g.lhs.tensor);
        if (headRows && headRows->batch * headRows->tokens != g.rows)
          headRows.reset();
        // The labels' slice may come after the head's forward: it is pure,
        // so it moves up when its own operands allow.
        if (headRows && !labelsBefore(headRows->labels, op))
          headRows.reset();
      }
      // A padded gradient's rows are read where they were computed: C's
      // rows are groups of T tokens, A's of T' at the slice's offset.
      bool unpadded = headRows && headRows->unpadded;
      Value lhs = unpadded ? as3D(b, loc, headRows->unpadded, 0, 2)
                           : as3D(b, loc, g.lhs.tensor, g.lhs.numBatch,
                                  g.lhs.numFirst);
      // A weight stored in half precision is read as it is stored.
      Value rhs = g.rhs.tensor;
      std::string suffix;
      if (Value narrow = widenedFrom(rhs)) {
        rhs = narrow;
        suffix = narrowWeightSuffix(
            cast<RankedTensorType>(narrow.getType()).getElementType());
      }
      SmallVector<Value> args{
          asDynBuffer(b, loc, lhs),
          asDynBuffer(b, loc,
                      as3D(b, loc, rhs, g.rhs.numBatch, g.rhs.numFirst)),
          out.dyn};
      if (headRows) {
        args.push_back(asDynBuffer(b, loc, rowMask(b, loc, *headRows)));
        args.push_back(i32(unpadded ? headRows->tokens : g.rows));
        args.push_back(i32(unpadded ? headRows->offset : 0));
        // Unselected logits rows are read by nobody; the input gradient's
        // are the gradient's zeros.
        args.push_back(i32(headRows->logits ? 0 : 1));
        if (headRows->soleGradient)
          headRows->soleGradient->setAttr(kIgnoredRowsUnreadAttr,
                                          b.getUnitAttr());
      }
      args.append({i32(g.lhs.trans), i32(g.rhs.trans), i32(g.accumulate),
                   i32(numThreads)});
      SmallVector<Type> types;
      for (Value a : args)
        types.push_back(a.getType());
      func::CallOp::create(
          b, loc,
          declareUkernel(module, b,
                         (headRows ? kSgemmRowsF32Ukernel : kSgemmF32Ukernel) +
                             suffix,
                         types),
          args);
      b.replaceOp(op, from3D(b, loc, out.tensor(b, loc), resTy, g.numBatch,
                             g.numRows));
    }
  }
};
} // namespace
