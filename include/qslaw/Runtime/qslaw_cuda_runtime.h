/*===- qslaw_cuda_runtime.h - device runtime of CUDA model libraries -*- C -*-===*
 *
 * libqslaw_cuda_runtime.so loads the CUDA driver (libcuda.so.1) with dlopen
 * on first use, so that a program linked against it runs, and its CPU paths
 * work, on a machine without a GPU or driver. Code generated for
 * `--target=cuda` calls the `mgpu*` entry points of MLIR's gpu-to-llvm
 * lowering, which this library implements (see docs/CUDA.md); the functions
 * below are for hosts (the qslaw runtime, the trainer, tests).
 *
 * Errors are sticky: the first failure of any call is kept (with what
 * failed, the driver's error name and text) until qslaw_cuda_take_error()
 * returns and clears it; calls made while an error is pending do nothing.
 *
 *===----------------------------------------------------------------------===*/
#ifndef QSLAW_RUNTIME_QSLAW_CUDA_RUNTIME_H
#define QSLAW_RUNTIME_QSLAW_CUDA_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Loads the driver, picks device 0 (or $QSLAW_CUDA_DEVICE), makes its
 * primary context current. 0 on success; otherwise non-zero and the reason
 * is in qslaw_cuda_take_error(). Idempotent. */
int qslaw_cuda_init(void);
/* "NVIDIA H100 80GB HBM3 (sm_90, driver 13000)" after a successful init. */
const char *qslaw_cuda_device_description(void);

/* The pending error text, or NULL when there is none; clears it. The
 * pointer stays valid until the next call on this thread. */
const char *qslaw_cuda_take_error(void);

/* Stream-ordered on the runtime's stream; reuse through the caching
 * allocator. */
void *qslaw_cuda_alloc(size_t bytes);
void qslaw_cuda_free(void *device_ptr);
/* Copies are ordered on the runtime's stream; to-host copies synchronise. */
int qslaw_cuda_copy_to_device(void *dst, const void *src, size_t bytes);
int qslaw_cuda_copy_to_host(void *dst, const void *src, size_t bytes);
int qslaw_cuda_copy_device(void *dst, const void *src, size_t bytes);
/* Device copies of a library's constant globals (weights), called by the
 * code of qslaw-gpu-resident-constants: the first call for a slot uploads
 * `bytes` from `host` and stores the device pointer in *slot; later calls
 * return it. NULL (with the error pending) if that fails. The library's
 * destructor releases each slot. */
void *qslaw_cuda_resident_constant(void **slot, const void *host, size_t bytes);
void qslaw_cuda_release_resident_constant(void **slot);
/* Waits for every queued kernel and copy; surfaces asynchronous faults. */
int qslaw_cuda_synchronize(void);

typedef struct {
  size_t allocated;      /* bytes in live blocks */
  size_t peak_allocated; /* high-water mark of `allocated` since reset */
  size_t reserved;       /* bytes held from the driver (live + cached) */
  size_t peak_reserved;
  uint64_t driver_allocations; /* cuMemAlloc calls made */
} qslaw_cuda_memory_stats;
void qslaw_cuda_get_memory_stats(qslaw_cuda_memory_stats *stats);
void qslaw_cuda_reset_peak_memory(void);
/* Returns every cached (free) block to the driver. */
void qslaw_cuda_empty_cache(void);

#ifdef __cplusplus
}
#endif

#endif /* QSLAW_RUNTIME_QSLAW_CUDA_RUNTIME_H */
