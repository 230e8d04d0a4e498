//===- ImageProcessor.cpp - Hugging Face image preprocessing in C++ -------===//
//
// What transformers' image processors (CLIP, SigLIP, LLaVA) do to an image,
// from their preprocessor_config.json: pad to square with the mean colour,
// resize, centre crop, rescale, normalise. The resize is PIL's separable
// convolution (the filter's support widened by the downscale factor, i.e.
// antialiased; bicubic a = -0.5), horizontal pass then vertical, each
// rounded to 8 bits: what PIL and torchvision's uint8 antialiased resize
// compute, up to their fixed-point rounding (one level on some pixels).
//
//===----------------------------------------------------------------------===//
#include "qslaw/Train/Data.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <algorithm>
#include <cstdio>
#include <cmath>

namespace qslaw::train {

namespace {

llvm::Error err(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

double bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0)
    return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0)
    return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

/// One output pixel's input window [first, first + weights.size()).
struct Taps {
  int first = 0;
  std::vector<double> weights;
};

/// PIL's precompute_coeffs for `in` -> `out` samples.
std::vector<Taps> coefficients(int in, int out, ImageSpec::Resample r) {
  std::vector<Taps> taps(out);
  double scale = double(in) / out;
  if (r == ImageSpec::Resample::Nearest) {
    // torchvision's nearest: the source pixel floor(dst * scale).
    for (int i = 0; i < out; ++i)
      taps[i] = {std::min(int(std::floor(i * scale)), in - 1), {1.0}};
    return taps;
  }
  double (*filter)(double) =
      r == ImageSpec::Resample::Bicubic ? bicubic : triangle;
  double support = r == ImageSpec::Resample::Bicubic ? 2.0 : 1.0;
  double filterScale = std::max(scale, 1.0);
  support *= filterScale;
  for (int i = 0; i < out; ++i) {
    double center = (i + 0.5) * scale;
    int lo = std::max(int(center - support + 0.5), 0);
    int hi = std::min(int(center + support + 0.5), in);
    Taps &t = taps[i];
    t.first = lo;
    double sum = 0;
    for (int x = lo; x < hi; ++x) {
      double w = filter((x - center + 0.5) / filterScale);
      t.weights.push_back(w);
      sum += w;
    }
    if (sum != 0)
      for (double &w : t.weights)
        w /= sum;
  }
  return taps;
}

uint8_t toByte(double v) {
  return uint8_t(std::clamp(std::floor(v + 0.5), 0.0, 255.0));
}

/// RGB8 image of w x h.
struct Rgb {
  int w = 0, h = 0;
  std::vector<uint8_t> px;
};

Rgb resize(const Rgb &src, int ow, int oh, ImageSpec::Resample r) {
  if (ow == src.w && oh == src.h)
    return src;
  // Horizontal pass (src.h rows of ow), then vertical, each to 8 bits.
  std::vector<Taps> hx = coefficients(src.w, ow, r);
  Rgb mid{ow, src.h, std::vector<uint8_t>(size_t(ow) * src.h * 3)};
  for (int y = 0; y < src.h; ++y)
    for (int x = 0; x < ow; ++x)
      for (int c = 0; c < 3; ++c) {
        double v = 0;
        const Taps &t = hx[x];
        for (size_t k = 0; k < t.weights.size(); ++k)
          v += t.weights[k] * src.px[(size_t(y) * src.w + t.first + k) * 3 + c];
        mid.px[(size_t(y) * ow + x) * 3 + c] = toByte(v);
      }
  std::vector<Taps> vy = coefficients(src.h, oh, r);
  Rgb out{ow, oh, std::vector<uint8_t>(size_t(ow) * oh * 3)};
  for (int y = 0; y < oh; ++y)
    for (int x = 0; x < ow; ++x)
      for (int c = 0; c < 3; ++c) {
        double v = 0;
        const Taps &t = vy[y];
        for (size_t k = 0; k < t.weights.size(); ++k)
          v += t.weights[k] * mid.px[((t.first + k) * size_t(ow) + x) * 3 + c];
        out.px[(size_t(y) * ow + x) * 3 + c] = toByte(v);
      }
  return out;
}

/// Keys of preprocessor_config.json that do not change what is computed
/// here (images are always converted to RGB; the class names are metadata).
const llvm::StringSet<> kIgnoredKeys = {
    "processor_class", "image_processor_type", "feature_extractor_type",
    "do_convert_rgb", "use_fast", "image_seq_length"};

} // namespace

llvm::Expected<std::vector<float>> processImage(const uint8_t *rgb, int w,
                                                int h, const ImageSpec &spec) {
  // What the steps would allocate is checked first: a 1 x 16384 image with
  // a shortest edge of 224 resizes to 224 x 3.7 M.
  auto tooLarge = [&](const char *what, int64_t ww, int64_t hh) {
    return err(spec.source + ": " + what + " gives " + llvm::Twine(ww) + " x " +
               llvm::Twine(hh) + " pixels for a " + llvm::Twine(w) + " x " +
               llvm::Twine(h) + " image, over the limit (16384 per side, " +
               "67108864 pixels)");
  };
  constexpr int64_t kMaxSide = 16384, kMaxPixels = int64_t(1) << 26;
  auto fits = [&](int64_t ww, int64_t hh) {
    return ww > 0 && hh > 0 && ww <= kMaxSide && hh <= kMaxSide &&
           ww * hh <= kMaxPixels;
  };
  int64_t pw = w, ph = h;
  if (spec.doPad)
    pw = ph = std::max(w, h);
  if (!fits(pw, ph))
    return tooLarge("do_pad", pw, ph);
  // The resize target (pw x ph is what the resize sees).
  int64_t rw = spec.resizeW, rh = spec.resizeH;
  if (spec.doResize) {
    if (spec.shortestEdge > 0) {
      // transformers: the long side is int(edge * long / short), truncated.
      double longSide = double(spec.shortestEdge) * std::max(pw, ph) /
                        std::min(pw, ph);
      int64_t l = longSide > double(kMaxSide) ? kMaxSide + 1 : int64_t(longSide);
      rw = pw >= ph ? l : spec.shortestEdge;
      rh = pw >= ph ? spec.shortestEdge : l;
    }
    if (!fits(rw, rh))
      return tooLarge("the resize", rw, rh);
  }
  Rgb img{w, h, std::vector<uint8_t>(rgb, rgb + size_t(w) * h * 3)};
  if (spec.doPad && w != h) {
    // LLaVA-1.5's expand2square: centred on a square of the mean colour.
    int side = std::max(w, h), left = (side - w) / 2, top = (side - h) / 2;
    Rgb sq{side, side, std::vector<uint8_t>(size_t(side) * side * 3)};
    // int(mean * 255) as transformers computes it, kept to a byte.
    uint8_t fill[3];
    for (int c = 0; c < 3; ++c)
      fill[c] = uint8_t(std::clamp(std::trunc(double(spec.mean[c]) * 255.0), 0.0, 255.0));
    for (size_t i = 0; i < sq.px.size(); ++i)
      sq.px[i] = fill[i % 3];
    for (int y = 0; y < h; ++y)
      std::copy_n(&img.px[size_t(y) * w * 3], size_t(w) * 3,
                  &sq.px[(size_t(y + top) * side + left) * 3]);
    img = std::move(sq);
  }
  if (spec.doResize)
    img = resize(img, int(rw), int(rh), spec.resample);
  int ch = img.h, cw = img.w, top = 0, left = 0;
  if (spec.doCenterCrop) {
    // torchvision's center_crop: offsets int(round(d / 2)) (half to even).
    ch = int(spec.cropH);
    cw = int(spec.cropW);
    top = int(std::nearbyint((img.h - ch) / 2.0));
    left = int(std::nearbyint((img.w - cw) / 2.0));
  }
  int64_t s = spec.size;
  std::vector<float> out(size_t(3 * s * s), 0.f);
  for (int y = 0; y < s; ++y)
    for (int x = 0; x < s; ++x) {
      int sy = y + top, sx = x + left;
      bool in = sy >= 0 && sy < img.h && sx >= 0 && sx < img.w;
      for (int c = 0; c < 3; ++c) {
        // A crop larger than the image pads with zeros, as torchvision does.
        float v = in ? float(img.px[(size_t(sy) * img.w + sx) * 3 + c]) : 0.f;
        if (spec.doRescale)
          v = float(v * spec.rescaleFactor);
        if (spec.doNormalize)
          v = (v - spec.mean[c]) / spec.std[c];
        out[size_t(c * s * s + y * s + x)] = v;
      }
    }
  return out;
}

llvm::Expected<ImageSpec> loadProcessorConfig(const std::string &path,
                                              int64_t size) {
  auto buf = llvm::MemoryBuffer::getFile(path);
  if (!buf)
    return err(path + ": " + buf.getError().message());
  return parseProcessorConfig((*buf)->getBuffer(), path, size);
}

llvm::Expected<ImageSpec> parseProcessorConfig(llvm::StringRef text,
                                               const std::string &path,
                                               int64_t size) {
  auto json = llvm::json::parse(text);
  if (!json)
    return err(path + ": " + llvm::toString(json.takeError()));
  const llvm::json::Object *o = json->getAsObject();
  if (!o)
    return err(path + ": expected a JSON object");
  ImageSpec s;
  s.size = size;
  s.fromConfig = true;
  s.source = path;
  auto bad = [&](llvm::StringRef key, const llvm::Twine &why) {
    return err(path + ": \"" + key + "\" " + why);
  };
  // {"shortest_edge": n} | {"height": h, "width": w} | n.
  auto dims = [&](llvm::StringRef key, const llvm::json::Value &v,
                  int64_t &edge, int64_t &hh, int64_t &ww,
                  bool intIsEdge) -> llvm::Error {
    if (auto n = v.getAsInteger()) {
      (intIsEdge ? edge : hh) = *n;
      if (!intIsEdge)
        ww = *n;
    } else if (const llvm::json::Object *d = v.getAsObject()) {
      for (const auto &kv : *d)
        if (kv.first != "shortest_edge" && kv.first != "height" &&
            kv.first != "width")
          return bad(key, "has the unsupported field \"" + kv.first.str() +
                              "\" (expected shortest_edge, or height and "
                              "width)");
      auto e = d->getInteger("shortest_edge");
      auto h = d->getInteger("height"), w = d->getInteger("width");
      if (e && !h && !w)
        edge = *e;
      else if (h && w && !e)
        hh = *h, ww = *w;
      else
        return bad(key, "must hold shortest_edge, or height and width");
    } else {
      return bad(key, "must be an integer or an object");
    }
    if ((edge != 0 && edge <= 0) || hh < 0 || ww < 0 ||
        (!edge && (hh <= 0 || ww <= 0)))
      return bad(key, "must be positive");
    return llvm::Error::success();
  };
  bool defaultToSquare = false;
  if (auto d = o->get("default_to_square")) {
    if (!d->getAsBoolean())
      return bad("default_to_square", "must be true or false");
    defaultToSquare = *d->getAsBoolean();
  }
  bool haveSize = false, haveCrop = false;
  for (const auto &kv : *o) {
    llvm::StringRef key = kv.first;
    const llvm::json::Value &v = kv.second;
    if (kIgnoredKeys.contains(key) || key == "default_to_square")
      continue;
    if (key == "do_pad" || key == "do_resize" || key == "do_center_crop" ||
        key == "do_rescale" || key == "do_normalize") {
      auto b = v.getAsBoolean();
      if (!b)
        return bad(key, "must be true or false");
      bool &field = key == "do_pad"           ? s.doPad
                    : key == "do_resize"      ? s.doResize
                    : key == "do_center_crop" ? s.doCenterCrop
                    : key == "do_rescale"     ? s.doRescale
                                              : s.doNormalize;
      field = *b;
    } else if (key == "image_mean" || key == "image_std") {
      const llvm::json::Array *a = v.getAsArray();
      std::optional<double> one = v.getAsNumber();
      if (!(a && a->size() == 3) && !one)
        return bad(key, "must be a number or a list of 3 numbers");
      std::array<float, 3> &dst = key == "image_mean" ? s.mean : s.std;
      for (int c = 0; c < 3; ++c) {
        std::optional<double> x = a ? (*a)[c].getAsNumber() : one;
        if (!x || !std::isfinite(*x))
          return bad(key, "must hold finite numbers");
        if (key == "image_std" && *x <= 0)
          return bad(key, "must be positive, got " + llvm::formatv("{0}", *x).str());
        dst[c] = float(*x);
      }
    } else if (key == "rescale_factor") {
      auto x = v.getAsNumber();
      if (!x || !std::isfinite(*x) || *x <= 0)
        return bad(key, "must be a positive number");
      s.rescaleFactor = *x;
    } else if (key == "resample") {
      auto r = v.getAsInteger();
      // PIL's codes: 0 nearest, 2 bilinear, 3 bicubic.
      if (!r || (*r != 0 && *r != 2 && *r != 3))
        return bad(key, "must be 0 (nearest), 2 (bilinear) or 3 (bicubic); "
                        "got " + llvm::formatv("{0}", v).str());
      s.resample = *r == 0   ? ImageSpec::Resample::Nearest
                   : *r == 2 ? ImageSpec::Resample::Bilinear
                             : ImageSpec::Resample::Bicubic;
    } else if (key == "size") {
      if (llvm::Error e = dims(key, v, s.shortestEdge, s.resizeH, s.resizeW,
                               !defaultToSquare))
        return std::move(e);
      haveSize = true;
    } else if (key == "crop_size") {
      int64_t edge = 0;
      if (llvm::Error e = dims(key, v, edge, s.cropH, s.cropW, false))
        return std::move(e);
      if (edge)
        return bad(key, "must be height and width (or one integer)");
      haveCrop = true;
    } else {
      return err(path + ": unknown key \"" + key +
                 "\" (this trainer applies do_pad, do_resize, size, "
                 "resample, do_center_crop, crop_size, do_rescale, "
                 "rescale_factor, do_normalize, image_mean, image_std)");
    }
  }
  // A flag the file leaves out follows the file's sizes (the processor
  // classes differ: CLIP crops, SigLIP does not).
  if (!o->get("do_resize"))
    s.doResize = haveSize;
  if (!o->get("do_center_crop"))
    s.doCenterCrop = haveCrop;
  if (s.doResize && !haveSize)
    return err(path + ": do_resize is set but there is no \"size\"");
  if (s.doCenterCrop && !haveCrop)
    return err(path + ": do_center_crop is set but there is no \"crop_size\"");
  // The pipeline's output must be the model's size x size.
  auto mismatch = [&](llvm::StringRef key, int64_t h, int64_t w) {
    return err(path + ": \"" + key + "\" gives " + llvm::Twine(h) + " x " +
               llvm::Twine(w) + " images; the model's pixel_values are " +
               llvm::Twine(size) + " x " + llvm::Twine(size));
  };
  if (s.doCenterCrop) {
    if (s.cropH != size || s.cropW != size)
      return mismatch("crop_size", s.cropH, s.cropW);
  } else if (s.doResize && !s.shortestEdge) {
    if (s.resizeH != size || s.resizeW != size)
      return mismatch("size", s.resizeH, s.resizeW);
  } else if (!(s.doResize && s.doPad && s.shortestEdge == size)) {
    return err(path + ": without do_center_crop, only a height x width "
               "resize (or do_pad with a shortest_edge resize) gives the "
               "model's square " + llvm::Twine(size) + " x " +
               llvm::Twine(size) + " images");
  }
  return s;
}

} // namespace qslaw::train

extern "C" int qslaw_trainer_preprocess_image(const char *image,
                                              const char *config,
                                              long long size, float *out,
                                              char *error,
                                              unsigned long error_len) {
  using namespace qslaw::train;
  auto report = [&](llvm::Error e) {
    std::string m = llvm::toString(std::move(e));
    if (error && error_len)
      std::snprintf(error, error_len, "%s", m.c_str());
    return 1;
  };
  if (!image || !out || size <= 0)
    return report(err("qslaw_trainer_preprocess_image: null image or output, "
                      "or size <= 0"));
  ImageSpec spec;
  spec.size = size;
  if (config) {
    auto s = loadProcessorConfig(config, size);
    if (!s)
      return report(s.takeError());
    spec = *s;
  }
  auto px = loadImage(image, spec);
  if (!px)
    return report(px.takeError());
  std::copy(px->begin(), px->end(), out);
  return 0;
}
