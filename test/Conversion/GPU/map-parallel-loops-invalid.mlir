// RUN: qslaw-opt %s -qslaw-gpu-map-parallel-loops="block-size=48" -verify-diagnostics

// expected-error@below {{qslaw-gpu-map-parallel-loops: block-size 48 is not a multiple of 32 in [32, 1024]}}
module {
}
