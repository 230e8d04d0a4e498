#ifndef QSLAW_ATTRS_TD
#define QSLAW_ATTRS_TD

include "qslaw/Dialect/QSLAW/IR/QSLAWDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def QSLAW_ScaleMode : I32EnumAttr<"ScaleMode", "what the trainable scale is", [
    I32EnumAttrCase<"Scale", 0, "scale">,
    I32EnumAttrCase<"Gamma", 1, "gamma">]> {
  let cppNamespace = "::mlir::qslaw";
  let genSpecializedAttr = 0;
}

def QSLAW_QuantSpecAttr : AttrDef<QSLAW_Dialect, "QuantSpec"> {
  let mnemonic = "quant";
  let summary = "Group-wise integer quantisation spec";
  let description = [{
    Describes how an `[N, K]` weight is quantized: `bits` (2, 3, 4 or 8),
    groups of `group` consecutive elements along K (the last group may be
    short when it does not divide K) or `per_channel` (one group per row),
    symmetric (`sym`, zero point fixed at `2^(bits-1)`) or asymmetric
    (`asym`, explicit integer zero points), and the scale mode:

    * `scale`: the scale `s` is learned directly on stored codes;
    * `gamma`: codes are recomputed from a full-precision weight with
      `round(W / (s * gamma))` and `gamma` is learned (straight-through).

    Syntax: `#qslaw.quant<bits = 4, group = 128, asym, mode = scale>`;
    `asym` and `mode = scale` are the defaults and may be omitted, fields
    come in any order. Inside qslaw ops the `#qslaw.quant` prefix is elided:
    `qslaw.qmatmul ... <bits = 4, group = 128> : ...`.
  }];
  let parameters = (ins "unsigned":$bits, "int64_t":$groupSize,
                        "bool":$symmetric, "ScaleMode":$mode);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// True when there is one group per output row.
    bool isPerChannel() const { return getGroupSize() == 0; }
    /// Group size along a reduction dimension of extent `k`.
    int64_t getGroupSizeFor(int64_t k) const {
      return isPerChannel() ? k : getGroupSize();
    }
    /// Number of groups J = ceil(k / group) along a reduction of extent `k`.
    int64_t getNumGroups(int64_t k) const {
      int64_t g = getGroupSizeFor(k);
      return g <= 0 ? 1 : (k + g - 1) / g;
    }
    /// Largest code value, 2^bits - 1.
    int64_t getQMax() const { return (int64_t(1) << getBits()) - 1; }
    /// Zero point used when the spec is symmetric, 2^(bits-1).
    int64_t getSymmetricZeroPoint() const { return int64_t(1) << (getBits() - 1); }
  }];
}

#endif // QSLAW_ATTRS_TD
