/*===- qslaw_runtime.h - C API of compiled qslaw models -------------*- C -*-===*
 *
 * Load a model library made by `qslaw-compile --emit=lib`, open a session
 * on a device, run its entry point on host tensors, read its signature.
 * Every call returns QSLAW_OK or an error code; qslaw_last_error() then
 * describes what and where (thread-local).
 *
 *===----------------------------------------------------------------------===*/
#ifndef QSLAW_RUNTIME_QSLAW_RUNTIME_H
#define QSLAW_RUNTIME_QSLAW_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  QSLAW_OK = 0,
  QSLAW_ERROR_IO = 1,        /* file missing/unreadable, not a model */
  QSLAW_ERROR_INVALID = 2,   /* bad argument: name, dtype, shape, count */
  QSLAW_ERROR_DEVICE = 3,    /* device not available */
} qslaw_status;

typedef struct qslaw_model qslaw_model;
typedef struct qslaw_session qslaw_session;

/* A host tensor. dtype: "f32", "f16", "bf16", "f64", "i64", "i32", "i8",
 * "i4", "i3", "i2", "i1". Data is C-contiguous with one element per
 * 1, 2, 4 or 8 bytes (sub-byte codes one per byte, unpacked). */
typedef struct {
  const char *name;
  const char *dtype;
  int32_t rank;
  const int64_t *shape;
  void *data;
  size_t bytes;
} qslaw_tensor;

const char *qslaw_last_error(void);

/* path NULL: the model linked into the running program (trainer). A library
 * compiled with --weights=external maps and checks its weights file,
 * PATH.weights beside it (docs/Runtime.md). */
qslaw_status qslaw_model_load(const char *path, qslaw_model **model);
/* As qslaw_model_load, with the weights file at `weights_path` (NULL: beside
 * the library). Refused for a library without external weights. */
qslaw_status qslaw_model_load_with_weights(const char *path,
                                           const char *weights_path,
                                           qslaw_model **model);
void qslaw_model_free(qslaw_model *model);
/* The signature as JSON: {"entry", "inputs": [{"name","dtype","shape"}],
 * "outputs": [...], "quantization": [...]}; owned by the model. */
const char *qslaw_model_signature(const qslaw_model *model);
int32_t qslaw_model_num_inputs(const qslaw_model *model);
int32_t qslaw_model_num_outputs(const qslaw_model *model);
/* Describes input/output i (name, dtype, rank, shape; data NULL). */
qslaw_status qslaw_model_input(const qslaw_model *model, int32_t i,
                               qslaw_tensor *desc);
qslaw_status qslaw_model_output(const qslaw_model *model, int32_t i,
                                qslaw_tensor *desc);

/* device: "cpu" or "cuda", matching the target the library was compiled
 * for ("target" in its signature). "cuda" fails with QSLAW_ERROR_DEVICE
 * (and the reason) when no usable GPU or driver is present. On CUDA, runs
 * copy host inputs to the device and host outputs back (session state stays
 * there, see below); kernels run in order on one stream and a run returns
 * once they finished. */
qslaw_status qslaw_session_create(qslaw_model *model, const char *device,
                                  qslaw_session **session);
void qslaw_session_free(qslaw_session *session);

/* Runs the entry point. inputs[i] are matched by name (any order; each
 * required input passed or held in the session state); outputs[i] is the
 * signature's i-th output, written into the caller's buffer of its dtype
 * and shape, or kept as session state when its data is NULL. */
qslaw_status qslaw_session_run(qslaw_session *session,
                               const qslaw_tensor *inputs, int32_t num_inputs,
                               qslaw_tensor *outputs, int32_t num_outputs);

/* Runs a named function of a training library (`qslaw-compile --train`):
 * "init_params", "forward_params", "grad_step" or "train_step"; same
 * matching rules as qslaw_session_run. Their signatures are under
 * "functions" in the model's signature JSON, the trainable tensors under
 * "training". */
qslaw_status qslaw_session_run_function(qslaw_session *session,
                                        const char *function,
                                        const qslaw_tensor *inputs,
                                        int32_t num_inputs,
                                        qslaw_tensor *outputs,
                                        int32_t num_outputs);

/* Session state: named tensors a session keeps between runs, on its device
 * (a training loop's parameters and optimizer moments), so that runs read
 * and write them in place and they cross the host<->device bus only when
 * asked for.
 *  - A run's input that the caller does not pass is read from the state
 *    tensor of the same name (its dtype and shape must match).
 *  - A run's output whose `data` is NULL is not copied out: it becomes the
 *    state tensor named after the output, replacing one of that name once
 *    the run has finished (so a run may replace what it read).
 * set: stores a copy of host tensor `t` under t->name (replacing one).
 * get: copies state tensor t->name into t->data (dtype, shape, bytes must
 *      match; on CUDA this waits for the queued work).
 * move: renames `from` to `to`, replacing `to`; no data moves.
 * drop: frees state tensor `name`, or all of them for NULL.
 * count/describe: what is held (desc->data is NULL), in name order. */
qslaw_status qslaw_session_state_set(qslaw_session *session,
                                     const qslaw_tensor *t);
qslaw_status qslaw_session_state_get(qslaw_session *session, qslaw_tensor *t);
qslaw_status qslaw_session_state_move(qslaw_session *session, const char *from,
                                      const char *to);
qslaw_status qslaw_session_state_drop(qslaw_session *session, const char *name);
int32_t qslaw_session_state_count(const qslaw_session *session);
qslaw_status qslaw_session_state_describe(const qslaw_session *session,
                                          int32_t i, qslaw_tensor *desc);

#ifdef __cplusplus
}
#endif

#endif /* QSLAW_RUNTIME_QSLAW_RUNTIME_H */
