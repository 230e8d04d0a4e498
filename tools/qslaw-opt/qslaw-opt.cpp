//===- qslaw-opt.cpp - qslaw pass driver ----------------------------------===//
#include "qslaw/Dialect/QSLAW/IR/QSLAWDialect.h"
#include "qslaw/Pipelines/Pipelines.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::qslaw::registerPipelines();
  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary translates kernels to LLVM IR.
  mlir::registerAllToLLVMIRTranslations(registry);
  registry.insert<mlir::qslaw::QSLAWDialect>();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "qslaw optimizer driver\n", registry));
}
