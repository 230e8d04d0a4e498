//===- fuzz_schedule.cpp - warmup schedule files (JSON or YAML) -----------===//
#include "FuzzSupport.h"
#include "qslaw/Train/Schedule.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto s = qslaw::train::parseSchedule(qslaw::fuzz::bytes(data, size),
                                       "fuzz.yaml", 1000);
  if (s) // what the trainer asks of a schedule, at every step
    for (int64_t step = 0; step < 1000; step += 37)
      (void)s->textFraction(step);
  qslaw::fuzz::drop(std::move(s));
  return 0;
}
