/*===- qslaw_trainer.h - C API of the QSLAW trainer ----------------*- C -*-===*
 *
 * The training loop of `qslaw-compile --emit=trainer` executables, callable
 * from C: qslaw_trainer_main(argc, argv) takes the trainer's command line
 * (see `TRAINER --help`) and returns its exit status. The model is the one
 * linked into the program, or `--model=LIB.so` (a library compiled with
 * `qslaw-compile --train`).
 *
 *===----------------------------------------------------------------------===*/
#ifndef QSLAW_TRAIN_QSLAW_TRAINER_H
#define QSLAW_TRAIN_QSLAW_TRAINER_H

#ifdef __cplusplus
extern "C" {
#endif

int qslaw_trainer_main(int argc, char **argv);

/* The trainer's image preprocessing alone, for tests and tools: decodes
 * `image` (PNG or JPEG) into `out` (3 x size x size floats, CHW) as the
 * Hugging Face preprocessor_config.json `config` says, or, when `config` is
 * NULL, as the trainer does without one. Returns 0, or 1 with a message in
 * `error` (truncated to `error_len`). */
int qslaw_trainer_preprocess_image(const char *image, const char *config,
                                   long long size, float *out, char *error,
                                   unsigned long error_len);

#ifdef __cplusplus
}
#endif

#endif
