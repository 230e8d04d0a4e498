#ifndef QSLAW_DIALECT_TD
#define QSLAW_DIALECT_TD

include "mlir/IR/OpBase.td"

def QSLAW_Dialect : Dialect {
  let name = "qslaw";
  let summary = "Group-wise quantized matmuls with learnable scales";
  let description = [{
    The `qslaw` dialect holds what is quantization- or training-specific in a
    QSLAW model: the quantisation spec attribute, quantize/dequantize, the
    fused quantized matmul `qmatmul` and its two gradients. Codes are signless
    integer tensors of the spec's bit width, read as unsigned values in
    `[0, 2^bits - 1]`; scales and zero points are `[N, J]` with
    `J = ceil(K / group)`.
  }];
  let cppNamespace = "::mlir::qslaw";
  let useDefaultAttributePrinterParser = 1;
  let hasConstantMaterializer = 1;
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect"];
}

#endif // QSLAW_DIALECT_TD
