//===- Batch.cpp - the trainer's batches: sampling and padding ------------===//
#include "qslaw/Train/Batch.h"
#include "qslaw/Train/Schedule.h"

#include <algorithm>

using namespace qslaw::train;

void qslaw::train::fillBatch(
    const DataSet &data, const std::map<std::string, std::vector<float>> &images,
    const BatchShape &shape, uint64_t seed, int64_t step, double textFraction,
    int64_t micro, int64_t padId, Batch &out) {
  int64_t B = shape.batch, T = shape.seqLen, G = B * shape.microBatches;
  out.ids.assign(B * T, padId);
  out.labels.assign(B * T, -100);
  out.mask.assign(B * T, 0);
  out.pixels.assign(B * shape.pixelsPerImage, 0.f);
  out.tokens = out.textSamples = out.lossTokens = 0;
  int64_t nextImage = 0;
  for (int64_t b = 0; b < B; ++b) {
    uint64_t g = uint64_t(micro * B + b);
    double u = double(sampleHash(seed, step, g) >> 11) * 0x1.0p-53;
    bool text = (u < textFraction && !data.text.empty()) || data.multimodal.empty();
    const std::vector<Record> &pool = text ? data.text : data.multimodal;
    const Record &r = pool[sampleHash(seed, step, G + g) % pool.size()];
    out.textSamples += text;
    int64_t n = std::min<int64_t>(T, r.inputIds.size());
    for (int64_t t = 0; t < n; ++t) {
      out.ids[b * T + t] = r.inputIds[t];
      out.labels[b * T + t] = r.labels[t];
      out.mask[b * T + t] = 1;
      out.lossTokens += t >= 1 && r.labels[t] != -100;
    }
    out.tokens += n;
    if (!text && shape.pixelsPerImage) {
      const std::vector<float> &img = images.at(r.image);
      std::copy(img.begin(), img.end(),
                out.pixels.begin() + nextImage * shape.pixelsPerImage);
      ++nextImage;
    }
  }
}
