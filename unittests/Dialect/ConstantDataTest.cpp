//===- ConstantDataTest.cpp - weights as dense or resource constants ------===//
#include "qslaw/Dialect/QSLAW/Utils/ConstantData.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <cstring>

using namespace mlir;
using namespace mlir::qslaw;

namespace {

struct ConstantDataTest : ::testing::Test {
  ConstantDataTest() { ctx.loadDialect<arith::ArithDialect>(); }
  ~ConstantDataTest() override = default;

  /// A resource over `bytes` whose deleter counts into `freed`.
  DenseResourceElementsAttr resource(ShapedType type, StringRef name,
                                     std::vector<char> bytes, size_t align) {
    auto *owned = new std::vector<char>(std::move(bytes));
    return DenseResourceElementsAttr::get(
        type, name,
        AsmResourceBlob(ArrayRef<char>(owned->data(), owned->size()), align,
                        [this, owned](void *, size_t, size_t) {
                          ++freed;
                          delete owned;
                        },
                        /*dataIsMutable=*/false));
  }
  template <typename T> static std::vector<char> bytesOf(ArrayRef<T> v) {
    std::vector<char> b(v.size() * sizeof(T));
    std::memcpy(b.data(), v.data(), b.size());
    return b;
  }

  int freed = 0; // before ctx: the context's blobs count into it as it goes
  MLIRContext ctx;
};

TEST_F(ConstantDataTest, ReadsF32ResourceAndDenseAlike) {
  auto ty = RankedTensorType::get({2, 2}, Float32Type::get(&ctx));
  float v[] = {1.5f, -2.0f, 0.25f, 3.0e-8f};
  ElementsAttr r = resource(ty, "w", bytesOf(ArrayRef<float>(v)), 4);
  ElementsAttr d = DenseElementsAttr::get(ty, ArrayRef<float>(v));
  SmallVector<float> a, b;
  ASSERT_TRUE(readFloats(r, a));
  ASSERT_TRUE(readFloats(d, b));
  EXPECT_EQ(a, SmallVector<float>(v, v + 4));
  EXPECT_EQ(a, b);
  // The dense copy of the resource holds the same bytes.
  DenseElementsAttr copy = toDenseElements(r);
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy, d);
  ASSERT_TRUE(constantBytes(r));
  EXPECT_EQ(constantBytes(r)->size(), sizeof(v));
}

TEST_F(ConstantDataTest, WidensBF16AndF16Exactly) {
  // bf16 0x3FC0 = 1.5, 0xC000 = -2; f16 0x3E00 = 1.5, 0x0001 = 2^-24.
  uint16_t bf[] = {0x3FC0, 0xC000};
  uint16_t hf[] = {0x3E00, 0x0001};
  SmallVector<float> a, b;
  ASSERT_TRUE(readFloats(
      resource(RankedTensorType::get({2}, BFloat16Type::get(&ctx)), "bf",
               bytesOf(ArrayRef<uint16_t>(bf)), 2),
      a));
  ASSERT_TRUE(readFloats(
      resource(RankedTensorType::get({2}, Float16Type::get(&ctx)), "hf",
               bytesOf(ArrayRef<uint16_t>(hf)), 2),
      b));
  EXPECT_EQ(a, (SmallVector<float>{1.5f, -2.0f}));
  EXPECT_EQ(b, (SmallVector<float>{1.5f, 0x1p-24f}));
}

TEST_F(ConstantDataTest, RefusesShortBlobsAndOtherTypes) {
  auto ty = RankedTensorType::get({4}, Float32Type::get(&ctx));
  ElementsAttr shortBlob = resource(ty, "short", std::vector<char>(8), 4);
  SmallVector<float> out;
  EXPECT_FALSE(constantBytes(shortBlob));
  EXPECT_FALSE(readFloats(shortBlob, out));
  EXPECT_FALSE(toDenseElements(shortBlob));
  auto i32 = RankedTensorType::get({2}, IntegerType::get(&ctx, 32));
  EXPECT_FALSE(readFloats(resource(i32, "ints", std::vector<char>(8), 4), out));
}

TEST_F(ConstantDataTest, ReleasesOnlyBlobsNothingRefersTo) {
  OpBuilder b(&ctx);
  OwningOpRef<ModuleOp> module = ModuleOp::create(b.getUnknownLoc());
  b.setInsertionPointToEnd(module->getBody());
  auto ty = RankedTensorType::get({2}, Float32Type::get(&ctx));
  float v[] = {1, 2};
  auto kept = resource(ty, "kept", bytesOf(ArrayRef<float>(v)), 4);
  auto dropped = resource(ty, "dropped", bytesOf(ArrayRef<float>(v)), 4);
  auto used = arith::ConstantOp::create(b, b.getUnknownLoc(), kept);
  auto dead = arith::ConstantOp::create(b, b.getUnknownLoc(), dropped);
  dead->erase();
  releaseUnusedResourceBlobs(*module);
  EXPECT_EQ(freed, 1);
  EXPECT_TRUE(constantBytes(cast<ElementsAttr>(used.getValue())));
  EXPECT_FALSE(constantBytes(cast<ElementsAttr>(ElementsAttr(dropped))));
  SmallVector<float> out;
  EXPECT_FALSE(readFloats(dropped, out)); // gone, not garbage
}

} // namespace
