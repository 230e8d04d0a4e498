//===- qslaw-train.cpp - the QSLAW trainer over a training library --------===//
//
//   qslaw-train --model=LIB.so --data=RECORDS.jsonl --steps=N --out=DIR ...
//
// The same loop as `qslaw-compile --emit=trainer` executables (which link
// the model in); all logic is in libqslaw_trainer (qslaw_trainer_main).
//
//===----------------------------------------------------------------------===//
#include "qslaw/Train/qslaw_trainer.h"

int main(int argc, char **argv) { return qslaw_trainer_main(argc, argv); }
