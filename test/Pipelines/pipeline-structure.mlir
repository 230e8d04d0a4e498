// The registered pipelines are built from typed pass constructors
// (lib/Pipelines/Pipelines.cpp); their textual form, as --dump-pass-pipeline
// prints it, is what a user replays with qslaw-opt. These checks pin the
// order of the stages and that each option reaches its pass.

// RUN: qslaw-opt %s --pass-pipeline='builtin.module(qslaw-cpu-pipeline{ukernels=1 ukernel-threads=3 library-gemm=1 gemm-min-flops=77 tile-size=16 vectorize=1 parallel=1 outline-min-ops=9 merge-functions=1 outline-layers=1 out-params=1 weights-file="a b{c}.w" weights-min-bytes=17 weights-background=1 weights-direct=1})' --dump-pass-pipeline -o /dev/null 2>&1 | FileCheck %s --check-prefix=CPU
// CPU: builtin.module(
// CPU-NEXT: qslaw-lower-to-ukernels{dtype=bf16 num-threads=3 target=cpu},
// CPU-NEXT: qslaw-lower-contractions-to-library{label-rows=true min-flops=77 num-threads=3},
// CPU-NEXT: qslaw-lower-cross-entropy-to-ukernels{num-threads=3},
// CPU-NEXT: func.func(
// CPU-NEXT: qslaw-widen-on-extract
// CPU-NEXT: ),
// CPU-NEXT: func.func(
// CPU-NEXT: convert-elementwise-to-linalg
// CPU: qslaw-lower-to-linalg,
// CPU-NEXT: canonicalize
// CPU-NEXT: cse,
// CPU-NEXT: func.func(
// CPU-NEXT: linalg-fuse-elementwise-ops
// CPU-NEXT: ),
// CPU-NEXT: cse,
// CPU-NEXT: func.func(
// CPU-NEXT: qslaw-bool-tensors-as-bytes
// CPU-NEXT: ),
// CPU-NEXT: qslaw-outline-layers{max-gap=8 min-ops=32},
// CPU-NEXT: qslaw-merge-identical-functions,
// CPU-NEXT: func.func(
// CPU-NEXT: qslaw-fill-per-writer
// CPU-NEXT: ),
// CPU-NEXT: qslaw-tile-and-vectorize{parallel=true parallel-min-work=65536 tile-size=16 vectorize=true},
// CPU-NEXT: one-shot-bufferize{{.*}}bufferize-function-boundaries=true{{.*}}function-boundary-type-conversion=identity-layout-map
// CPU: scf-forall-to-parallel
// CPU: buffer-results-to-out-params{add-result-attr=false hoist-dynamic-allocs=false hoist-static-allocs=true modify-public-functions=true},
// CPU-NEXT: func.func(
// CPU-NEXT: qslaw-forward-out-params
// CPU: ownership-based-buffer-deallocation
// CPU: qslaw-early-dealloc
// CPU: qslaw-memref-copy-to-linalg{parallel-min-elems=0 row-vectors=true strided-only=true},
// CPU-NEXT: func.func(
// CPU-NEXT: convert-linalg-to-loops,
// CPU-NEXT: lower-vector-multi-reduction{lowering-strategy=inner-reduction}
// CPU: qslaw-vector-math
// CPU: convert-vector-to-scf{full-unroll=true
// CPU: qslaw-emulate-narrow-type,
// CPU: convert-scf-to-openmp
// CPU: qslaw-outline-loop-nests{min-ops=9},
// CPU-NEXT: qslaw-merge-identical-functions,
// CPU-NEXT: qslaw-external-weights{background=true direct=true file={a b{c}.w} min-bytes=17},
// CPU: finalize-memref-to-llvm{{.*}}use-generic-functions=true
// CPU: reconcile-unrealized-casts
// CPU-NEXT: )

// RUN: qslaw-opt %s --pass-pipeline='builtin.module(qslaw-cpu-bufferize{gemm-label-rows=0})' --dump-pass-pipeline -o /dev/null 2>&1 | FileCheck %s --check-prefix=NOROWS
// NOROWS: qslaw-lower-contractions-to-library{label-rows=false min-flops=1048576

// Defaults (serial asked for): layers outlined after fusion, out-params,
// no OpenMP, no weights file.
// RUN: qslaw-opt %s --pass-pipeline='builtin.module(qslaw-cpu-bufferize{parallel=0})' --dump-pass-pipeline -o /dev/null 2>&1 | FileCheck %s --check-prefix=DEFAULT
// DEFAULT: qslaw-lower-to-ukernels{dtype=bf16 num-threads=1 target=cpu},
// DEFAULT: linalg-fuse-elementwise-ops
// DEFAULT: qslaw-outline-layers{max-gap=8 min-ops=32},
// DEFAULT-NEXT: qslaw-merge-identical-functions,
// DEFAULT-NOT: scf-forall-to-parallel
// DEFAULT: buffer-results-to-out-params{{.*}}hoist-static-allocs=true
// DEFAULT: qslaw-forward-out-params
// DEFAULT-NOT: convert-scf-to-openmp
// DEFAULT: qslaw-outline-loop-nests{min-ops=8},
// DEFAULT-NEXT: qslaw-merge-identical-functions
// DEFAULT-NOT: qslaw-external-weights
// DEFAULT: )

// RUN: qslaw-opt %s --pass-pipeline='builtin.module(qslaw-cuda-pipeline{hand-kernels=f16 chips=sm_80,sm_90 block-size=64 opt-level=1 format=isa cuda-path=/opt/cuda weights-file=q.w})' --dump-pass-pipeline -o /dev/null 2>&1 | FileCheck %s --check-prefix=CUDA
// CUDA: qslaw-lower-to-ukernels{dtype=f16 num-threads=1 target=cuda},
// CUDA: qslaw-gpu-map-parallel-loops{block-size=64},
// CUDA: nvvm-attach-target{{.*}}O=1 {{.*}}chip=sm_80
// CUDA: nvvm-attach-target{{.*}}O=1 {{.*}}chip=sm_90
// CUDA: gpu.module(
// CUDA-NEXT: convert-gpu-to-nvvm
// CUDA: qslaw-gpu-resident-constants,
// CUDA-NEXT: qslaw-external-weights{background=false direct=false file=q.w min-bytes=4096},
// CUDA: gpu-module-to-binary{{.*}}format=isa {{.*}}toolkit=/opt/cuda
// CUDA-NEXT: qslaw-gpu-pack-objects

// With emulate-on-cpu the launches stay CPU loops: no NVVM, the CPU's
// second half.
// RUN: qslaw-opt %s --pass-pipeline='builtin.module(qslaw-cuda-pipeline{emulate-on-cpu=1})' --dump-pass-pipeline -o /dev/null 2>&1 | FileCheck %s --check-prefix=EMU
// EMU: qslaw-gpu-emulate-on-cpu
// EMU-NOT: nvvm
// EMU: finalize-memref-to-llvm{{.*}}use-generic-functions=true
// EMU-NOT: gpu-module-to-binary

module {}

// outline-layers=false: no layer outlining.
// RUN: qslaw-opt %s --pass-pipeline='builtin.module(qslaw-cpu-bufferize{outline-layers=0})' --dump-pass-pipeline -o /dev/null 2>&1 | FileCheck %s --check-prefix=INLINE
// INLINE-NOT: qslaw-outline-layers
// INLINE: qslaw-tile-and-vectorize
