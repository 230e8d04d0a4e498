//===- RuntimeInternal.h - runtime state shared inside the CUDA runtime -*- C++ -*-===//
//
// What the hand-written-kernel entries (HandKernels.cpp) need from the
// runtime proper (CudaRuntime.cpp), without exposing it in the C API.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_LIB_RUNTIME_CUDA_RUNTIMEINTERNAL_H
#define QSLAW_LIB_RUNTIME_CUDA_RUNTIMEINTERNAL_H

#include <string>

namespace qslaw::cuda {

/// Initialises on first use and makes the context current on this thread;
/// false when the device is unusable or an error is pending.
bool deviceReady();
/// The one stream every kernel and copy is ordered on (a CUstream).
void *runtimeStream();
/// Makes `msg` the pending error (the first one wins until taken).
void reportError(const std::string &msg);
/// Whether `ptr` is the device copy of a library's constant global: its
/// contents never change until qslaw_cuda_release_resident_constant.
bool isResidentConstant(const void *ptr);
/// Called when a resident constant is released: drops whatever was derived
/// from it (HandKernels.cpp's packed weights).
void forgetDerivedFrom(const void *ptr);

} // namespace qslaw::cuda

#endif // QSLAW_LIB_RUNTIME_CUDA_RUNTIMEINTERNAL_H
