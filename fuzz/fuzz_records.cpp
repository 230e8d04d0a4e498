//===- fuzz_records.cpp - the trainer's JSON-lines records ----------------===//
#include "FuzzSupport.h"
#include "qslaw/Train/Data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  qslaw::fuzz::drop(qslaw::train::parseRecords(qslaw::fuzz::bytes(data, size),
                                               "/fuzz/records.jsonl", 64));
  return 0;
}
