//===- ConstantData.cpp - weights as dense or resource constants ----------===//
#include "qslaw/Dialect/QSLAW/Utils/ConstantData.h"

#include "mlir/IR/BuiltinDialect.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/StringSet.h"

#include <cstring>

using namespace mlir;

namespace mlir::qslaw {

bool matchConstantTensor(Value v, ElementsAttr &out) {
  Attribute a;
  if (!v || !matchPattern(v, m_Constant(&a)))
    return false;
  out = dyn_cast<ElementsAttr>(a);
  return bool(out);
}

std::optional<ArrayRef<char>> constantBytes(ElementsAttr a) {
  auto ty = dyn_cast<ShapedType>(a.getType());
  if (!ty || !ty.hasStaticShape() || !ty.getElementType().isIntOrFloat())
    return std::nullopt;
  unsigned bits = ty.getElementType().getIntOrFloatBitWidth();
  if (bits % 8)
    return std::nullopt; // i1/i4 are stored one per byte or packed: no raw view
  size_t want = size_t(ty.getNumElements()) * (bits / 8);
  if (auto d = dyn_cast<DenseIntOrFPElementsAttr>(a)) {
    if (d.isSplat())
      return std::nullopt;
    ArrayRef<char> raw = d.getRawData();
    return raw.size() == want ? std::optional(raw) : std::nullopt;
  }
  if (auto r = dyn_cast<DenseResourceElementsAttr>(a)) {
    const AsmResourceBlob *blob = r.getRawHandle().getBlob();
    if (!blob || blob->getData().size() != want)
      return std::nullopt;
    return blob->getData();
  }
  return std::nullopt;
}

bool readFloats(ElementsAttr a, SmallVectorImpl<float> &out) {
  Type elem = a.getElementType();
  if (auto d = dyn_cast<DenseElementsAttr>(a)) {
    if (elem.isF32()) {
      out.assign(d.getValues<float>().begin(), d.getValues<float>().end());
      return true;
    }
    if (elem.isF16() || elem.isBF16()) {
      out.clear();
      for (APFloat v : d.getValues<APFloat>())
        out.push_back(v.convertToFloat());
      return true;
    }
    return false;
  }
  std::optional<ArrayRef<char>> raw = constantBytes(a);
  if (!raw)
    return false;
  size_t n = size_t(cast<ShapedType>(a.getType()).getNumElements());
  out.resize(n);
  if (elem.isF32()) {
    std::memcpy(out.data(), raw->data(), n * sizeof(float));
    return true;
  }
  const auto *h = reinterpret_cast<const uint16_t *>(raw->data());
  if (elem.isBF16()) {
    // bf16 is the upper half of an f32.
    for (size_t i = 0; i < n; ++i) {
      uint32_t bits = uint32_t(h[i]) << 16;
      std::memcpy(&out[i], &bits, 4);
    }
    return true;
  }
  if (elem.isF16()) {
    for (size_t i = 0; i < n; ++i)
      out[i] = APFloat(APFloat::IEEEhalf(), APInt(16, h[i])).convertToFloat();
    return true;
  }
  return false;
}

DenseElementsAttr toDenseElements(ElementsAttr a) {
  if (auto d = dyn_cast<DenseElementsAttr>(a))
    return d;
  std::optional<ArrayRef<char>> raw = constantBytes(a);
  if (!raw)
    return {};
  return DenseElementsAttr::getFromRawBuffer(cast<ShapedType>(a.getType()),
                                             *raw);
}

ElementsAttr f32ConstantLike(ElementsAttr like, ArrayRef<int64_t> shape,
                             ArrayRef<float> values, StringRef name) {
  auto ty = RankedTensorType::get(shape, Float32Type::get(like.getContext()));
  if (isa<DenseResourceElementsAttr>(like))
    return DenseResourceElementsAttr::get(
        ty, name, HeapAsmResourceBlob::allocateAndCopyInferAlign(values));
  return DenseElementsAttr::get(ty, values);
}

std::vector<AsmResourceBlob> takeUnusedResourceBlobs(Operation *root) {
  llvm::StringSet<> used;
  root->walk([&](Operation *op) {
    for (NamedAttribute na : op->getAttrs())
      na.getValue().walk([&](DenseResourceElementsAttr r) {
        used.insert(r.getRawHandle().getKey());
      });
  });
  auto &manager =
      DenseResourceElementsHandle::getManagerInterface(root->getContext())
          .getBlobManager();
  SmallVector<DialectResourceBlobManager::BlobEntry *> dead;
  manager.getBlobMap([&](const llvm::StringMap<
                         DialectResourceBlobManager::BlobEntry> &map) {
    for (const auto &kv : map)
      if (kv.second.getBlob() && !used.contains(kv.first()))
        dead.push_back(
            const_cast<DialectResourceBlobManager::BlobEntry *>(&kv.second));
  });
  std::vector<AsmResourceBlob> taken;
  for (DialectResourceBlobManager::BlobEntry *e : dead) {
    taken.push_back(std::move(*e->getBlob()));
    e->setBlob(AsmResourceBlob());
  }
  return taken;
}

void releaseUnusedResourceBlobs(Operation *root) {
  (void)takeUnusedResourceBlobs(root);
}

} // namespace mlir::qslaw
