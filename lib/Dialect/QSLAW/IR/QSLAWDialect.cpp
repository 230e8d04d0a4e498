//===- QSLAWDialect.cpp - qslaw dialect and the quant spec attribute ------===//
#include "qslaw/Dialect/QSLAW/IR/QSLAWDialect.h"
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::qslaw;

#include "qslaw/Dialect/QSLAW/IR/QSLAWOpsDialect.cpp.inc"
#include "qslaw/Dialect/QSLAW/IR/QSLAWEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "qslaw/Dialect/QSLAW/IR/QSLAWAttrs.cpp.inc"

void QSLAWDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "qslaw/Dialect/QSLAW/IR/QSLAWAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.cpp.inc"
      >();
}

Operation *QSLAWDialect::materializeConstant(OpBuilder &builder,
                                             Attribute value, Type type,
                                             Location loc) {
  if (auto typed = dyn_cast<TypedAttr>(value))
    if (arith::ConstantOp::isBuildableWith(typed, type))
      return arith::ConstantOp::create(builder, loc, type, typed);
  return nullptr;
}

//===----------------------------------------------------------------------===//
// QuantSpecAttr
//===----------------------------------------------------------------------===//

LogicalResult
QuantSpecAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                      unsigned bits, int64_t groupSize, bool symmetric,
                      ScaleMode mode) {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
    return emitError() << "unsupported bit width " << bits
                       << "; expected 2, 3, 4 or 8";
  if (groupSize < 0)
    return emitError() << "group size must be positive, got " << groupSize;
  return success();
}

// Syntax: <bits = B, (group = G | per_channel) [, sym | asym] [, mode = M]>,
// items in any order.
Attribute QuantSpecAttr::parse(AsmParser &parser, Type) {
  std::optional<unsigned> bits;
  std::optional<int64_t> group;
  bool symmetric = false, sawSymmetry = false;
  ScaleMode mode = ScaleMode::Scale;
  SMLoc start = parser.getCurrentLocation();
  if (parser.parseLess())
    return {};
  auto parseItem = [&]() -> ParseResult {
    StringRef key;
    SMLoc keyLoc = parser.getCurrentLocation();
    if (parser.parseKeyword(&key))
      return failure();
    if (key == "bits") {
      unsigned b;
      if (parser.parseEqual() || parser.parseInteger(b))
        return failure();
      bits = b;
      return success();
    }
    if (key == "group") {
      int64_t g;
      if (parser.parseEqual() || parser.parseInteger(g))
        return failure();
      if (g == 0)
        return parser.emitError(keyLoc,
                                "group size must be positive; use "
                                "'per_channel' for one group per row");
      group = g;
      return success();
    }
    if (key == "per_channel") {
      group = 0;
      return success();
    }
    if (key == "sym" || key == "asym") {
      if (sawSymmetry)
        return parser.emitError(keyLoc, "symmetry given twice");
      sawSymmetry = true;
      symmetric = key == "sym";
      return success();
    }
    if (key == "mode") {
      StringRef m;
      SMLoc modeLoc = parser.getCurrentLocation();
      if (parser.parseEqual() || parser.parseKeyword(&m))
        return failure();
      std::optional<ScaleMode> parsed = symbolizeScaleMode(m);
      if (!parsed)
        return parser.emitError(modeLoc, "unknown scale mode '")
               << m << "'; expected 'scale' or 'gamma'";
      mode = *parsed;
      return success();
    }
    return parser.emitError(keyLoc, "unknown quant spec field '")
           << key << "'; expected bits, group, per_channel, sym, asym or mode";
  };
  if (parser.parseCommaSeparatedList(parseItem) || parser.parseGreater())
    return {};
  if (!bits) {
    parser.emitError(start, "quant spec needs 'bits = N'");
    return {};
  }
  if (!group) {
    parser.emitError(start, "quant spec needs 'group = G' or 'per_channel'");
    return {};
  }
  return QuantSpecAttr::getChecked(
      [&] { return parser.emitError(start); }, parser.getContext(), *bits,
      *group, symmetric, mode);
}

void QuantSpecAttr::print(AsmPrinter &printer) const {
  printer << "<bits = " << getBits() << ", ";
  if (isPerChannel())
    printer << "per_channel";
  else
    printer << "group = " << getGroupSize();
  printer << ", " << (getSymmetric() ? "sym" : "asym")
          << ", mode = " << stringifyScaleMode(getMode()) << ">";
}
