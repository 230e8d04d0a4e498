//===- Batch.h - the trainer's batches: sampling and padding ----*- C++ -*-===//
//
// A global batch of `microBatches * B` slots per optimizer step. Slot g of
// step t is linguistic with probability p(t) (the warmup schedule), drawn by
// sampleHash(seed, t, g), and its record by sampleHash(seed, t, G + g), G
// the global batch: so k micro-batches of B sample exactly what one batch
// of k*B would, and one micro-batch (k = 1) what the trainer always did.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_TRAIN_BATCH_H
#define QSLAW_TRAIN_BATCH_H

#include "qslaw/Train/Data.h"

#include <map>

namespace qslaw::train {

/// One compiled-size batch [B, T] (+ pixels [B, 3, S, S] when the model
/// takes images). Padding: pad id, label -100, mask 0. Image features are
/// consumed in batch order by image tokens, so the batch's images fill the
/// first pixel slots; text samples add none.
struct Batch {
  std::vector<int64_t> ids, mask, labels;
  std::vector<float> pixels;
  int64_t tokens = 0;      // unpadded tokens
  int64_t textSamples = 0; // linguistic slots
  /// Tokens the next-token loss counts: labels[b, t] != -100 for t >= 1.
  int64_t lossTokens = 0;
};

struct BatchShape {
  int64_t batch = 1, seqLen = 0, pixelsPerImage = 0; // 0: no pixel input
  int64_t microBatches = 1;
};

/// Fills micro-batch `micro` of step `step` (0-based) into `out`.
void fillBatch(const DataSet &data,
               const std::map<std::string, std::vector<float>> &images,
               const BatchShape &shape, uint64_t seed, int64_t step,
               double textFraction, int64_t micro, int64_t padId, Batch &out);

} // namespace qslaw::train

#endif
