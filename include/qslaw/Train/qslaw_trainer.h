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

#ifdef __cplusplus
}
#endif

#endif
