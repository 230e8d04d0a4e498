//===- Importer.cpp - ONNX graph to func.func -----------------------------===//
#include "qslaw/Import/ONNX/Importer.h"
#include "GraphRewrites.h"
#include "qslaw/Import/ONNX/ModelLoader.h"
#include "NodeContext.h"
#include "qslaw/Dialect/QSLAW/IR/QSLAWDialect.h"
#include "qslaw/Dialect/QSLAW/Utils/ConstantData.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/Path.h"
#include "onnx/defs/schema.h"

#include <limits>
#include <map>
#include <mutex>

using namespace mlir;

namespace qslaw::onnx_import {

namespace {
struct Entry {
  int64_t since, until;
  ConvertFn fn;
};
std::map<std::pair<std::string, std::string>, std::vector<Entry>> &registry() {
  static std::map<std::pair<std::string, std::string>, std::vector<Entry>> r;
  return r;
}
void ensureRegistered() {
  static std::once_flag once;
  std::call_once(once, [] {
    registerElementwiseConverters();
    registerLinearConverters();
    registerShapeConverters();
    registerTensorConverters();
    registerNormConverters();
    registerMaskedScatterConverter();
    registerDequantizeConverters();
    registerCumSumConverter();
  });
}
std::string canonicalDomain(llvm::StringRef d) {
  return d == "ai.onnx" ? "" : d.str();
}
} // namespace

void registerConverter(llvm::StringRef domain, llvm::StringRef op,
                       int64_t since, int64_t until, ConvertFn fn) {
  registry()[{canonicalDomain(domain), op.str()}].push_back(
      {since, until, std::move(fn)});
}

std::vector<SupportedOp> supportedOps() {
  ensureRegistered();
  std::vector<SupportedOp> out;
  for (auto &[key, entries] : registry())
    for (const Entry &e : entries)
      out.push_back({key.first, key.second, e.since, e.until});
  return out;
}

void registerImportDialects(DialectRegistry &registry) {
  registry.insert<arith::ArithDialect, func::FuncDialect, scf::SCFDialect,
                  linalg::LinalgDialect, math::MathDialect,
                  tensor::TensorDialect, ::mlir::qslaw::QSLAWDialect>();
}

//===----------------------------------------------------------------------===//
// Schema checks
//===----------------------------------------------------------------------===//

/// Checks a node against ONNX's own schema of its op (libonnx): required
/// inputs present and not "", and, where the library knows the model's
/// opset, the input and output counts, required attributes and attribute
/// types. The converters then index required inputs and read attributes
/// without checking each. Debian's libonnx stops at an older opset than
/// today's exports use; for a newer opset only what no later version has
/// relaxed is checked (the required inputs: ONNX has only ever made inputs
/// optional, and attributes have become inputs). Ops ONNX does not define
/// (com.microsoft, qslaw) are checked by their converters.
static LogicalResult checkAgainstSchema(const NodeContext &nc,
                                        const std::string &dom) {
  const onnx::NodeProto &node = nc.node;
  const onnx::OpSchema *schema = onnx::OpSchemaRegistry::Schema(
      node.op_type(), int(nc.opset), dom);
  if (!schema)
    return success();
  const auto &known = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
  auto it = known.find(dom);
  bool exact = it != known.end() && nc.opset <= it->second.second;
  auto range = [](int lo, int hi) {
    return "[" + std::to_string(lo) + ", " +
           (hi == std::numeric_limits<int>::max() ? std::string("any")
                                                   : std::to_string(hi)) +
           "]";
  };
  if (node.input_size() < schema->min_input() ||
      (exact && node.input_size() > schema->max_input()))
    return nc.emitError() << node.input_size() << " inputs, ONNX's schema "
                          << "takes " << range(schema->min_input(),
                                               schema->max_input());
  if (node.output_size() < schema->min_output() ||
      (exact && node.output_size() > schema->max_output()))
    return nc.emitError() << node.output_size() << " outputs, ONNX's schema "
                          << "gives " << range(schema->min_output(),
                                               schema->max_output());
  const auto &formal = schema->inputs();
  for (int i = 0; i < schema->min_input() && !formal.empty(); ++i) {
    const auto &param = formal[std::min<size_t>(i, formal.size() - 1)];
    if (node.input(i).empty() &&
        param.GetOption() != onnx::OpSchema::FormalParameterOption::Optional)
      return nc.emitError() << "required input " << i << " ('"
                            << param.GetName() << "') is empty";
  }
  if (!exact)
    return success();
  for (const auto &[name, a] : schema->attributes()) {
    const onnx::AttributeProto *given = nc.attr(name);
    if (!given && a.required)
      return nc.emitError() << "required attribute '" << name << "' is missing";
    if (given && given->type() != onnx::AttributeProto::UNDEFINED &&
        given->type() != a.type)
      return nc.emitError()
             << "attribute '" << name << "' is "
             << onnx::AttributeProto::AttributeType_Name(given->type())
             << ", ONNX's schema says "
             << onnx::AttributeProto::AttributeType_Name(a.type);
  }
  return success();
}

//===----------------------------------------------------------------------===//
// NodeContext
//===----------------------------------------------------------------------===//

InFlightDiagnostic NodeContext::emitError() const {
  return mlir::emitError(loc) << "node '"
                              << (node.name().empty() && node.output_size()
                                      ? node.output(0)
                                      : node.name())
                              << "' ("
                              << (node.domain().empty() ? "" : node.domain() + ".")
                              << node.op_type() << ", opset " << opset << "): ";
}

const onnx::AttributeProto *NodeContext::attr(llvm::StringRef name) const {
  for (const auto &a : node.attribute())
    if (a.name() == name)
      return &a;
  return nullptr;
}
int64_t NodeContext::attrInt(llvm::StringRef name, int64_t def) const {
  const auto *a = attr(name);
  return a ? a->i() : def;
}
float NodeContext::attrFloat(llvm::StringRef name, float def) const {
  const auto *a = attr(name);
  return a ? a->f() : def;
}
std::string NodeContext::attrString(llvm::StringRef name,
                                    llvm::StringRef def) const {
  const auto *a = attr(name);
  return a ? a->s() : def.str();
}
std::optional<std::vector<int64_t>>
NodeContext::attrInts(llvm::StringRef name) const {
  const auto *a = attr(name);
  if (!a)
    return std::nullopt;
  return std::vector<int64_t>(a->ints().begin(), a->ints().end());
}
FailureOr<int64_t> NodeContext::axis(int64_t a, int64_t rank,
                                     llvm::StringRef what,
                                     bool inclusive) const {
  int64_t hi = inclusive ? rank + 1 : rank;
  if (a < -rank || a >= hi) {
    emitError() << what << " " << a << " is out of range [" << -rank << ", "
                << hi << ") for a rank-" << rank << " input";
    return failure();
  }
  return a < 0 ? a + rank : a;
}

FailureOr<std::vector<int64_t>>
NodeContext::axes(llvm::ArrayRef<int64_t> as, int64_t rank,
                  llvm::StringRef what) const {
  std::vector<int64_t> out;
  for (int64_t a : as) {
    FailureOr<int64_t> n = axis(a, rank, what);
    if (failed(n))
      return failure();
    if (llvm::is_contained(out, *n)) {
      emitError() << what << " repeats axis " << *n;
      return failure();
    }
    out.push_back(*n);
  }
  return out;
}

DenseElementsAttr NodeContext::constant(unsigned i) const {
  // A weight held as a resource is copied here: the converter folds it.
  ElementsAttr attr;
  if (i < inputs.size() && mlir::qslaw::matchConstantTensor(inputs[i], attr))
    return mlir::qslaw::toDenseElements(attr);
  return {};
}
bool NodeContext::isConstant(unsigned i) const {
  ElementsAttr attr;
  return i < inputs.size() && mlir::qslaw::matchConstantTensor(inputs[i], attr);
}
std::optional<std::vector<int64_t>> NodeContext::constInts(unsigned i) const {
  DenseElementsAttr c = constant(i);
  if (!c || !isa<IntegerType>(c.getElementType()))
    return std::nullopt;
  std::vector<int64_t> v;
  for (const APInt &x : c.getValues<APInt>())
    v.push_back(x.getSExtValue());
  return v;
}

//===----------------------------------------------------------------------===//
// Import
//===----------------------------------------------------------------------===//

namespace {
Type elementType(MLIRContext *ctx, int32_t t) {
  using TP = onnx::TensorProto;
  Builder b(ctx);
  switch (t) {
  case TP::FLOAT: return b.getF32Type();
  case TP::FLOAT16: return b.getF16Type();
  case TP::BFLOAT16: return b.getBF16Type();
  case TP::DOUBLE: return b.getF64Type();
  case TP::INT64: case TP::UINT64: return b.getI64Type();
  case TP::INT32: case TP::UINT32: return b.getI32Type();
  case TP::INT16: case TP::UINT16: return b.getI16Type();
  case TP::INT8: case TP::UINT8: return b.getI8Type();
  case TP::BOOL: return b.getI1Type();
  case 21: case 22: return b.getIntegerType(4);
  default: return {};
  }
}

class GraphImporter {
public:
  GraphImporter(MLIRContext *ctx, llvm::StringRef path,
                const ImportOptions &options)
      : ctx(ctx), path(path), options(options), b(ctx) {}

  OwningOpRef<ModuleOp> run();

private:
  InFlightDiagnostic fileError() {
    return mlir::emitError(FileLineColLoc::get(ctx, path, 0, 0));
  }
  Location nameLoc(llvm::StringRef name) {
    return NameLoc::get(StringAttr::get(ctx, name),
                        FileLineColLoc::get(ctx, path, 0, 0));
  }
  FailureOr<Value> constantFrom(onnx::TensorProto &t, Location loc);
  FailureOr<RankedTensorType> valueType(const onnx::ValueInfoProto &vi);

  MLIRContext *ctx;
  std::string path;
  const ImportOptions &options;
  OpBuilder b;
  llvm::StringMap<Value> values;
  /// Values whose ONNX type is a signed integer (MLIR integers are signless).
  llvm::StringSet<> signedValues;
};

/// Float initializers of at least this many bytes (weights, not the
/// constants of shape arithmetic) become resources (ConstantData.h).
static constexpr size_t kResourceMinBytes = 4096;

/// A blob over `data` that keeps its storage (the mapped external-data slice
/// or the moved raw_data) alive, so the weight is not copied. A slice that
/// is not aligned for its element type is copied once.
static AsmResourceBlob blobOver(TensorData &&data, size_t align) {
  ArrayRef<char> bytes = data.bytes;
  if (reinterpret_cast<uintptr_t>(bytes.data()) % align)
    return HeapAsmResourceBlob::allocateAndCopyWithAlign(bytes, align,
                                                         /*dataIsMutable=*/false);
  return AsmResourceBlob(
      bytes, align,
      [storage = std::move(data.storage)](void *, size_t, size_t) mutable {
        storage.reset();
      },
      /*dataIsMutable=*/false);
}

FailureOr<Value> GraphImporter::constantFrom(onnx::TensorProto &t,
                                             Location loc) {
  auto data = takeTensor(t, llvm::sys::path::parent_path(path));
  if (!data) {
    mlir::emitError(loc) << path << ": " << llvm::toString(data.takeError());
    return failure();
  }
  Type elem = elementType(ctx, data->dataType);
  if (!elem) {
    mlir::emitError(loc) << path << ": initializer '" << t.name()
                         << "': unsupported data type "
                         << dataTypeName(data->dataType);
    return failure();
  }
  auto type = RankedTensorType::get(data->dims, elem);
  DenseElementsAttr attr;
  int64_t n = data->numElements();
  if (elem.isInteger(4) || elem.isInteger(1)) {
    // MLIR stores these one element per byte; ONNX packs int4 two per byte.
    SmallVector<APInt> vals;
    vals.reserve(n);
    unsigned w = elem.getIntOrFloatBitWidth();
    for (int64_t i = 0; i < n; ++i) {
      uint8_t byte = uint8_t(data->bytes[w == 4 ? i / 2 : i]);
      uint8_t v = w == 4 ? ((i % 2) ? byte >> 4 : byte & 0xF) : (byte != 0);
      vals.push_back(APInt(w, v));
    }
    attr = DenseElementsAttr::get(type, vals);
  } else if (isa<FloatType>(elem) && data->bytes.size() >= kResourceMinBytes) {
    size_t align = elem.getIntOrFloatBitWidth() / 8;
    auto op = arith::ConstantOp::create(
        b, loc,
        DenseResourceElementsAttr::get(type, t.name(),
                                       blobOver(std::move(*data), align)));
    op->setAttr("qslaw.name", b.getStringAttr(t.name()));
    return op.getResult();
  } else {
    attr = DenseElementsAttr::getFromRawBuffer(
        type, ArrayRef<char>(data->bytes.data(), data->bytes.size()));
  }
  auto op = arith::ConstantOp::create(b, loc, attr);
  op->setAttr("qslaw.name", b.getStringAttr(t.name()));
  return op.getResult();
}

FailureOr<RankedTensorType>
GraphImporter::valueType(const onnx::ValueInfoProto &vi) {
  if (!vi.type().has_tensor_type()) {
    fileError() << path << ": graph input '" << vi.name()
                << "' is not a tensor; only tensor inputs are supported";
    return failure();
  }
  const auto &tt = vi.type().tensor_type();
  Type elem = elementType(ctx, tt.elem_type());
  if (!elem) {
    fileError() << path << ": graph input '" << vi.name()
                << "' has unsupported element type "
                << dataTypeName(tt.elem_type());
    return failure();
  }
  SmallVector<int64_t> shape;
  auto bound = options.shapeBindings.find(vi.name());
  if (bound != options.shapeBindings.end()) {
    if (tt.has_shape() && tt.shape().dim_size() != int(bound->second.size())) {
      fileError() << path << ": --shape " << vi.name() << " gives "
                  << bound->second.size() << " dimensions, the model has "
                  << tt.shape().dim_size();
      return failure();
    }
    for (int i = 0; tt.has_shape() && i < tt.shape().dim_size(); ++i) {
      const auto &d = tt.shape().dim(i);
      if (d.has_dim_value() && d.dim_value() > 0 &&
          d.dim_value() != bound->second[i]) {
        fileError() << path << ": --shape " << vi.name() << " dimension " << i
                    << " is " << bound->second[i] << ", the model fixes it to "
                    << d.dim_value();
        return failure();
      }
    }
    shape.assign(bound->second.begin(), bound->second.end());
    return RankedTensorType::get(shape, elem);
  }
  if (!tt.has_shape()) {
    fileError() << path << ": graph input '" << vi.name()
                << "' has no shape; bind it with --shape " << vi.name()
                << "=D0xD1...";
    return failure();
  }
  for (const auto &d : tt.shape().dim()) {
    if (!d.has_dim_value() || d.dim_value() <= 0) {
      fileError() << path << ": graph input '" << vi.name()
                  << "' has dynamic dimension '"
                  << (d.has_dim_param() ? d.dim_param() : "?")
                  << "'; bind it with --shape " << vi.name() << "=D0xD1...";
      return failure();
    }
    shape.push_back(d.dim_value());
  }
  return RankedTensorType::get(shape, elem);
}

OwningOpRef<ModuleOp> GraphImporter::run() {
  ensureRegistered();
  auto model = loadModel(path);
  if (!model) {
    fileError() << llvm::toString(model.takeError());
    return {};
  }
  rewriteMaskedScatter(*(*model)->mutable_graph());
  const onnx::GraphProto &graph = (*model)->graph();
  std::map<std::string, int64_t> opsets;
  for (const auto &o : (*model)->opset_import())
    opsets[canonicalDomain(o.domain())] = o.version();
  if (!opsets.count("")) {
    fileError() << path << ": model imports no default-domain opset";
    return {};
  }
  if (opsets[""] < 13 || opsets[""] > 23) {
    fileError() << path << ": unsupported default opset " << opsets[""]
                << "; qslaw imports opsets 13 to 23";
    return {};
  }

  // Every unsupported (domain, op, opset) at once, with node names.
  std::vector<std::string> unsupported;
  for (const auto &node : graph.node()) {
    std::string dom = canonicalDomain(node.domain());
    auto it = opsets.find(dom);
    // qslaw's own nodes come from import-time rewrites, not from the model.
    int64_t version = it != opsets.end() ? it->second : dom == "qslaw" ? 1 : -1;
    auto reg = registry().find({dom, node.op_type()});
    bool ok = false;
    if (reg != registry().end())
      for (const Entry &e : reg->second)
        ok |= version >= e.since && version <= e.until;
    if (!ok)
      unsupported.push_back("(" + (dom.empty() ? std::string("ai.onnx") : dom) +
                            ", " + node.op_type() + ", " +
                            std::to_string(version) + ") at node '" +
                            node.name() + "'");
  }
  if (!unsupported.empty()) {
    auto diag = fileError();
    diag << path << ": " << unsupported.size()
         << " node(s) use unsupported ops:";
    for (const std::string &u : unsupported)
      diag << "\n  " << u;
    return {};
  }

  OwningOpRef<ModuleOp> module = ModuleOp::create(nameLoc(path));
  b.setInsertionPointToEnd(module->getBody());
  llvm::StringSet<> initNames;
  for (const auto &t : graph.initializer())
    initNames.insert(t.name());
  SmallVector<Type> argTypes;
  SmallVector<std::string> argNames;
  llvm::StringSet<> defined; // each name has one definition (SSA)
  for (const auto &vi : graph.input()) {
    if (initNames.contains(vi.name()))
      continue;
    if (vi.name().empty() || !defined.insert(vi.name()).second) {
      fileError() << path << ": graph input '" << vi.name()
                  << "' is declared twice or has no name";
      return {};
    }
    auto ty = valueType(vi);
    if (failed(ty))
      return {};
    argTypes.push_back(*ty);
    argNames.push_back(vi.name());
  }
  auto func = func::FuncOp::create(b, nameLoc(graph.name()),
                                   options.entryName,
                                   b.getFunctionType(argTypes, {}));
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  // Names travel as function attributes (argument attributes would reach
  // the LLVM translation, which does not know them).
  SmallVector<Attribute> inNames;
  for (auto [i, name] : llvm::enumerate(argNames)) {
    values[name] = entry->getArgument(i);
    inNames.push_back(b.getStringAttr(name));
  }
  func->setAttr("qslaw.inputs", b.getArrayAttr(inNames));
  for (onnx::TensorProto &t :
       *(*model)->mutable_graph()->mutable_initializer()) {
    using TP = onnx::TensorProto;
    int32_t dt = t.data_type();
    if (dt == TP::INT8 || dt == TP::INT16 || dt == TP::INT32 ||
        dt == TP::INT64 || dt == 22 /*INT4*/)
      signedValues.insert(t.name());
    auto c = constantFrom(t, nameLoc(t.name()));
    if (failed(c))
      return {};
    values[t.name()] = *c;
  }

  for (const auto &node : graph.node()) {
    std::string dom = canonicalDomain(node.domain());
    int64_t version = dom == "qslaw" ? 1 : opsets[dom];
    if (node.output_size() == 0 || node.output(0).empty()) {
      fileError() << path << ": node '" << node.name() << "' ("
                  << node.op_type() << ") has no output";
      return {};
    }
    NodeContext nc{b, nameLoc(node.name().empty() ? node.output(0) : node.name()),
                   node, version, {}};
    if (failed(checkAgainstSchema(nc, dom)))
      return {};
    for (const std::string &in : node.input()) {
      if (in.empty()) {
        nc.inputs.push_back(Value());
        continue;
      }
      auto it = values.find(in);
      if (it == values.end()) {
        nc.emitError() << "input '" << in << "' is not produced by any "
                       << "earlier node, graph input or initializer";
        return {};
      }
      nc.inputs.push_back(it->second);
    }
    for (const std::string &in : node.input())
      nc.signedInputs.push_back(signedValues.contains(in));
    const ConvertFn *fn = nullptr;
    for (const Entry &e : registry()[{dom, node.op_type()}])
      if (version >= e.since && version <= e.until)
        fn = &e.fn;
    SmallVector<Value> results;
    Operation *last = entry->empty() ? nullptr : &entry->back();
    // Errors the building blocks emit while the converter still succeeds
    // (an input that does not broadcast) fail the node too.
    int errors = 0;
    LogicalResult converted = failure();
    {
      ScopedDiagnosticHandler count(b.getContext(), [&](Diagnostic &d) {
        errors += d.getSeverity() == DiagnosticSeverity::Error;
        return failure(); // and on to the user
      });
      converted = (*fn)(nc, results);
    }
    if (failed(converted))
      return {};
    if (errors) {
      nc.emitError() << "its inputs' shapes or types do not fit the op";
      return {};
    }
    // Shapes computed from constants (Expand, ConstantOfShape, Tile, ...)
    // must be real: no negative dimension, no element count past int64.
    for (Value v : results) {
      auto t = v ? dyn_cast<RankedTensorType>(v.getType()) : RankedTensorType();
      int64_t count = 1;
      for (int64_t d : t ? t.getShape() : ArrayRef<int64_t>())
        if (d < 0 || llvm::MulOverflow(count, d, count)) {
          std::string dims;
          for (int64_t x : t.getShape())
            dims += (dims.empty() ? "" : ", ") + std::to_string(x);
          nc.emitError() << "gives a result of shape [" << dims
                         << "]: negative or overflowing dimensions";
          return {};
        }
    }
    for (auto [i, out] : llvm::enumerate(node.output()))
      if (i < results.size() && !out.empty()) {
        if (values.count(out)) {
          nc.emitError() << "output '" << out << "' is already defined by "
                         << "another node, graph input or initializer";
          return {};
        }
        values[out] = results[i];
      }
    // The ops this node became must verify: converters trust operand
    // shapes that ONNX's shape rules would have refused (a LayerNorm scale
    // of the wrong length made an invalid linalg.generic; found by
    // fuzz_onnx_import). The verifier's diagnostic says what is wrong.
    for (Operation &op : llvm::make_range(
             last ? std::next(last->getIterator()) : entry->begin(),
             entry->end()))
      if (failed(mlir::verify(&op))) {
        nc.emitError() << "its inputs' shapes or types do not fit the op";
        return {};
      }
  }

  SmallVector<Value> rets;
  for (const auto &vi : graph.output()) {
    auto it = values.find(vi.name());
    if (it == values.end()) {
      fileError() << path << ": graph output '" << vi.name()
                  << "' is never produced";
      return {};
    }
    rets.push_back(it->second);
  }
  func::ReturnOp::create(b, func.getLoc(), rets);
  func.setType(b.getFunctionType(argTypes, TypeRange(ValueRange(rets))));
  SmallVector<Attribute> outNames;
  for (const auto &vi : graph.output())
    outNames.push_back(b.getStringAttr(vi.name()));
  func->setAttr("qslaw.outputs", b.getArrayAttr(outNames));
  return module;
}
} // namespace

OwningOpRef<ModuleOp> importModel(llvm::StringRef path, MLIRContext *context,
                                  const ImportOptions &options) {
  DialectRegistry registry;
  registerImportDialects(registry);
  context->appendDialectRegistry(registry);
  context->loadAllAvailableDialects();
  return GraphImporter(context, path, options).run();
}

} // namespace qslaw::onnx_import
