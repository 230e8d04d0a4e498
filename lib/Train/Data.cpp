//===- Data.cpp - records and images for the trainer -----------------------===//
#include "qslaw/Train/Data.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <memory>
#include <jpeglib.h>
#include <png.h>

using llvm::createStringError;
using llvm::inconvertibleErrorCode;

namespace qslaw::train {

namespace {
llvm::Error err(const llvm::Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

bool intArray(const llvm::json::Object &o, llvm::StringRef key,
              std::vector<int64_t> &out) {
  const llvm::json::Array *a = o.getArray(key);
  if (!a)
    return false;
  for (const llvm::json::Value &v : *a) {
    auto i = v.getAsInteger();
    if (!i)
      return false;
    out.push_back(*i);
  }
  return true;
}
} // namespace

llvm::Expected<DataSet> loadRecords(const std::string &path, int64_t maxLen) {
  auto buf = llvm::MemoryBuffer::getFile(path);
  if (!buf)
    return err(path + ": cannot read: " + buf.getError().message());
  return parseRecords((*buf)->getBuffer(), path, maxLen);
}

llvm::Expected<DataSet> parseRecords(llvm::StringRef text,
                                     const std::string &path, int64_t maxLen) {
  llvm::SmallString<256> dir(path);
  llvm::sys::path::remove_filename(dir);
  DataSet ds;
  llvm::StringRef rest = text;
  for (int line = 1; !rest.empty(); ++line) {
    auto [text, tail] = rest.split('\n');
    rest = tail;
    if (text.trim().empty())
      continue;
    std::string where = path + ":" + std::to_string(line);
    auto v = llvm::json::parse(text);
    if (!v)
      return err(where + ": malformed JSON record: " +
                 llvm::toString(v.takeError()));
    const llvm::json::Object *o = v->getAsObject();
    if (!o)
      return err(where + ": a record must be a JSON object");
    Record r;
    r.line = line;
    if (auto id = o->getString("id"))
      r.id = id->str();
    else
      r.id = "line " + std::to_string(line);
    if (!intArray(*o, "input_ids", r.inputIds) || r.inputIds.empty())
      return err(where + ": record '" + r.id +
                 "': \"input_ids\" must be a non-empty integer array");
    if (!intArray(*o, "labels", r.labels) ||
        r.labels.size() != r.inputIds.size())
      return err(where + ": record '" + r.id +
                 "': \"labels\" must be an integer array as long as "
                 "\"input_ids\"");
    for (const auto &kv : *o)
      if (kv.first != "id" && kv.first != "input_ids" && kv.first != "labels" &&
          kv.first != "image")
        return err(where + ": record '" + r.id + "': unknown field '" +
                   kv.first.str() + "'");
    if (auto img = o->getString("image")) {
      llvm::SmallString<256> p(*img);
      if (!llvm::sys::path::is_absolute(p)) {
        p = dir;
        llvm::sys::path::append(p, *img);
      }
      r.image = std::string(p);
    }
    if (int64_t(r.inputIds.size()) > maxLen) {
      ++ds.skippedTooLong;
      continue;
    }
    (r.image.empty() ? ds.text : ds.multimodal).push_back(std::move(r));
  }
  return ds;
}

namespace {
struct Raw {
  int w = 0, h = 0, channels = 0;
  std::vector<uint8_t> px;
};

/// Images larger than this are refused before any pixel is allocated: a
/// header can declare 2^31 x 2^31 pixels in a few bytes.
constexpr int64_t kMaxSide = 16384, kMaxPixels = int64_t(1) << 26;

llvm::Error checkDims(const std::string &path, const char *kind, int64_t w,
                      int64_t h) {
  if (w <= 0 || h <= 0)
    return err(path + ": empty " + kind + " image (" + llvm::Twine(w) + " x " +
               llvm::Twine(h) + ")");
  if (w > kMaxSide || h > kMaxSide || w * h > kMaxPixels)
    return err(path + ": " + kind + " image of " + llvm::Twine(w) + " x " +
               llvm::Twine(h) + " pixels is larger than the limit (" +
               llvm::Twine(kMaxSide) + " per side, " + llvm::Twine(kMaxPixels) +
               " pixels)");
  return llvm::Error::success();
}

/// libpng's errors and warnings: both end decoding (a warning is damage
/// libpng chose to tolerate, e.g. a bad CRC in an ancillary chunk), with
/// libpng's words kept for the message.
struct PngState {
  std::string message;
};

llvm::Expected<Raw> decodePng(const std::string &path, FILE *f) {
  PngState state;
  png_structp png = png_create_read_struct(
      PNG_LIBPNG_VER_STRING, &state,
      [](png_structp p, png_const_charp msg) {
        static_cast<PngState *>(png_get_error_ptr(p))->message = msg;
        png_longjmp(p, 1);
      },
      [](png_structp p, png_const_charp msg) {
        static_cast<PngState *>(png_get_error_ptr(p))->message = msg;
        png_longjmp(p, 1);
      });
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return err(path + ": out of memory decoding PNG");
  }
  // Heap state only past this point: a longjmp skips destructors of
  // objects made after setjmp.
  auto r = std::make_unique<Raw>();
  auto rows = std::make_unique<std::vector<png_bytep>>();
  std::string dimsError;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    if (!dimsError.empty())
      return err(dimsError);
    return err(path + ": undecodable PNG image (" + state.message + ")");
  }
  png_init_io(png, f);
  png_read_info(png, info);
  if (llvm::Error e = checkDims(path, "PNG", png_get_image_width(png, info),
                                png_get_image_height(png, info))) {
    dimsError = llvm::toString(std::move(e));
    png_longjmp(png, 1);
  }
  png_set_expand(png);
  png_set_strip_16(png);
  png_set_gray_to_rgb(png);
  png_set_strip_alpha(png);
  png_read_update_info(png, info);
  r->w = int(png_get_image_width(png, info));
  r->h = int(png_get_image_height(png, info));
  r->channels = 3;
  r->px.resize(size_t(r->w) * r->h * 3);
  rows->resize(r->h);
  for (int y = 0; y < r->h; ++y)
    (*rows)[y] = r->px.data() + size_t(y) * r->w * 3;
  png_read_image(png, rows->data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return std::move(*r);
}

struct JpegError {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {0};
};

llvm::Expected<Raw> decodeJpeg(const std::string &path, FILE *f) {
  jpeg_decompress_struct cinfo;
  JpegError jerr;
  cinfo.err = jpeg_std_error(&jerr.mgr);
  jerr.mgr.error_exit = [](j_common_ptr c) {
    auto *e = reinterpret_cast<JpegError *>(c->err);
    c->err->format_message(c, e->message);
    longjmp(e->jump, 1);
  };
  // libjpeg reports damaged data (a truncated file, corrupt entropy-coded
  // segments) as warnings and carries on with grey fill: that is wrong
  // pixels, so a warning is an error here (PIL refuses truncated JPEGs too).
  jerr.mgr.emit_message = [](j_common_ptr c, int level) {
    if (level >= 0)
      return; // trace messages
    auto *e = reinterpret_cast<JpegError *>(c->err);
    c->err->format_message(c, e->message);
    longjmp(e->jump, 1);
  };
  auto r = std::make_unique<Raw>();
  std::string dimsError;
  if (setjmp(jerr.jump)) {
    jpeg_destroy_decompress(&cinfo);
    if (!dimsError.empty())
      return err(dimsError);
    return err(path + ": undecodable JPEG image (" +
               std::string(jerr.message) + ")");
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, f);
  jpeg_read_header(&cinfo, TRUE);
  if (llvm::Error e = checkDims(path, "JPEG", cinfo.image_width,
                                cinfo.image_height)) {
    dimsError = llvm::toString(std::move(e));
    longjmp(jerr.jump, 1);
  }
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  r->w = int(cinfo.output_width);
  r->h = int(cinfo.output_height);
  r->channels = 3;
  r->px.resize(size_t(r->w) * r->h * 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = r->px.data() + size_t(cinfo.output_scanline) * r->w * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return std::move(*r);
}
} // namespace

llvm::Expected<std::vector<float>> loadImage(const std::string &path,
                                             const ImageSpec &spec) {
  auto buf = llvm::MemoryBuffer::getFile(path);
  if (!buf)
    return err(path + ": missing image file");
  return decodeImage((*buf)->getBuffer(), path, spec);
}

llvm::Expected<std::vector<float>> decodeImage(llvm::StringRef bytes,
                                               const std::string &path,
                                               const ImageSpec &spec) {
  const auto *sig = reinterpret_cast<const unsigned char *>(bytes.data());
  size_t n = bytes.size();
  bool png = n >= 8 && !png_sig_cmp(sig, 0, 8);
  bool jpeg = n >= 3 && sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF;
  if (!png && !jpeg)
    return err(path + ": undecodable image (not PNG or JPEG)");
  // Both decoders read a FILE; this one reads the bytes in memory.
  FILE *f = fmemopen(const_cast<char *>(bytes.data()), n, "rb");
  if (!f)
    return err(path + ": cannot open the image's bytes");
  llvm::Expected<Raw> raw = png ? decodePng(path, f) : decodeJpeg(path, f);
  std::fclose(f);
  if (!raw)
    return raw.takeError();
  if (raw->w <= 0 || raw->h <= 0)
    return err(path + ": empty image");
  if (spec.fromConfig)
    return processImage(raw->px.data(), raw->w, raw->h, spec);
  // Resize the shortest side to `size` (bilinear, pixel centres), then crop
  // the centre size x size.
  int64_t s = spec.size;
  double scale = double(s) / std::min(raw->w, raw->h);
  int64_t rw = std::max<int64_t>(s, std::llround(raw->w * scale));
  int64_t rh = std::max<int64_t>(s, std::llround(raw->h * scale));
  int64_t x0 = (rw - s) / 2, y0 = (rh - s) / 2;
  std::vector<float> out(size_t(3 * s * s));
  for (int64_t y = 0; y < s; ++y)
    for (int64_t x = 0; x < s; ++x) {
      double sx = (x + x0 + 0.5) / scale - 0.5, sy = (y + y0 + 0.5) / scale - 0.5;
      sx = std::clamp(sx, 0.0, double(raw->w - 1));
      sy = std::clamp(sy, 0.0, double(raw->h - 1));
      int ix = int(sx), iy = int(sy);
      int jx = std::min(ix + 1, raw->w - 1), jy = std::min(iy + 1, raw->h - 1);
      double fx = sx - ix, fy = sy - iy;
      for (int c = 0; c < 3; ++c) {
        auto at = [&](int xx, int yy) {
          return double(raw->px[(size_t(yy) * raw->w + xx) * 3 + c]);
        };
        double v = (1 - fy) * ((1 - fx) * at(ix, iy) + fx * at(jx, iy)) +
                   fy * ((1 - fx) * at(ix, jy) + fx * at(jx, jy));
        out[size_t(c * s * s + y * s + x)] =
            float((v / 255.0 - spec.mean[c]) / spec.std[c]);
      }
    }
  return out;
}

} // namespace qslaw::train
