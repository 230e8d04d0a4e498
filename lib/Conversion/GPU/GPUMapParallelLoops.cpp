//===- GPUMapParallelLoops.cpp - blocks and threads for parallel loops ----===//
#include "qslaw/Conversion/Passes.h"

#include "mlir/Dialect/GPU/Transforms/ParallelLoopMapper.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "llvm/Support/MathExtras.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_GPUMAPPARALLELLOOPS
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;

namespace {

gpu::ParallelLoopDimMappingAttr dimMapping(MLIRContext *ctx,
                                           gpu::Processor p) {
  AffineMap id = AffineMap::getMultiDimIdentityMap(1, ctx);
  return gpu::ParallelLoopDimMappingAttr::get(ctx, p, id, id);
}

std::optional<int64_t> constantTripCount(scf::ParallelOp op, unsigned d) {
  auto lb = getConstantIntValue(op.getLowerBound()[d]);
  auto ub = getConstantIntValue(op.getUpperBound()[d]);
  auto step = getConstantIntValue(op.getStep()[d]);
  if (!lb || !ub || !step || *step <= 0)
    return std::nullopt;
  return (*ub - *lb + *step - 1) / *step;
}

struct GPUMapParallelLoopsPass
    : qslaw::impl::GPUMapParallelLoopsBase<GPUMapParallelLoopsPass> {
  using Base::Base;

  void runOnOperation() override {
    if (blockSize <= 0 || blockSize > 1024 || blockSize % 32 != 0) {
      getOperation().emitError("qslaw-gpu-map-parallel-loops: block-size ")
          << int64_t(blockSize) << " is not a multiple of 32 in [32, 1024]";
      return signalPassFailure();
    }
    SmallVector<scf::ParallelOp> outermost;
    getOperation().walk([&](scf::ParallelOp op) {
      if (!op->getParentOfType<scf::ParallelOp>() &&
          !op->getParentOfType<gpu::LaunchOp>())
        outermost.push_back(op);
    });
    MLIRContext *ctx = &getContext();
    for (scf::ParallelOp op : outermost) {
      unsigned rank = op.getNumLoops();
      // Threads along the innermost (contiguous) dimension; a short one
      // gets fewer threads, at least a warp.
      int64_t threads = blockSize;
      if (auto trip = constantTripCount(op, rank - 1); trip && *trip > 0)
        threads = std::min<int64_t>(
            threads, std::max<int64_t>(32, int64_t(llvm::PowerOf2Ceil(*trip))));
      SmallVector<int64_t> tiles(rank, 1);
      tiles.back() = threads;
      auto [outer, inner] =
          scf::tileParallelLoop(op, tiles, /*noMinMaxBounds=*/true);
      SmallVector<gpu::ParallelLoopDimMappingAttr> outerMap, innerMap;
      static constexpr gpu::Processor blocks[] = {
          gpu::Processor::BlockX, gpu::Processor::BlockY,
          gpu::Processor::BlockZ};
      for (unsigned d = 0; d < rank; ++d) {
        unsigned fromInner = rank - 1 - d;
        outerMap.push_back(dimMapping(
            ctx, fromInner < 3 ? blocks[fromInner] : gpu::Processor::Sequential));
        innerMap.push_back(dimMapping(ctx, fromInner == 0
                                               ? gpu::Processor::ThreadX
                                               : gpu::Processor::Sequential));
      }
      if (failed(gpu::setMappingAttr(outer, outerMap)) ||
          failed(gpu::setMappingAttr(inner, innerMap)))
        return signalPassFailure();
      // Parallel loops nested in the tile run sequentially in each thread.
      inner.getBody()->walk([&](scf::ParallelOp nested) {
        SmallVector<gpu::ParallelLoopDimMappingAttr> seq(
            nested.getNumLoops(),
            dimMapping(ctx, gpu::Processor::Sequential));
        (void)gpu::setMappingAttr(nested, seq);
      });
    }
  }
};

} // namespace
