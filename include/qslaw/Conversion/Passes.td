#ifndef QSLAW_CONVERSION_PASSES_TD
#define QSLAW_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def QSLAWToLinalg : Pass<"qslaw-lower-to-linalg", "ModuleOp"> {
  let summary = "Lower qslaw ops to linalg with dequantisation in the reduction body";
  let description = [{
    `qmatmul`, `qmatmul_grad_input`, `qmatmul_grad_scale`,
    `qmatmul_grad_gamma`, `quantize` and `dequantize` become
    `linalg.generic` ops. The quantized matmul and its gradients read codes,
    scales and zero points through `(n, k) -> (n, k floordiv G)` maps and
    dequantise inside the reduction body, so no `[N, K]` float tensor is
    created (a short last group needs no padding). Accumulation is in f32;
    f16/bf16 activations are extended in the body and the result truncated.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::tensor::TensorDialect"];
}

def QSLAWToUkernels : Pass<"qslaw-lower-to-ukernels", "ModuleOp"> {
  let summary = "Call hand-tuned CPU microkernels for the quantized matmuls and gradients they cover";
  let description = [{
    Replaces `qslaw.qmatmul` with f32 activations and scales and static
    shapes by calls into `libqslaw_ukernels`: 4-bit codes by
    `qslaw_ukernel_qmatmul_w4_f32` (fused dequantisation, AVX-512 / AVX2
    with runtime dispatch), 2-, 3- and 8-bit codes by
    `qslaw_ukernel_qmatmul_w<B>_f32`, which dequantises a block of W (at
    most 1 MiB) at a time and multiplies it in the GEMM library. The
    scale-mode gradients `qslaw.qmatmul_grad_input` /
    `qslaw.qmatmul_grad_scale`, gamma mode's `qslaw.qmatmul_grad_gamma`
    (clamp mask recomputed from the float weight) and `qslaw.quantize` of
    every width go to the same block-dequantising kernels
    (`..._w<B>_grad_input_f32`, `..._w<B>_grad_scale_f32`,
    `..._w<B>_grad_gamma_f32`, `qslaw_ukernel_quantize_w<B>_f32`); ds and
    dgamma are the token GEMM of a row block with the group sums as its
    epilogue, so no `[N, K]` tensor exists. Gamma mode's float weight is a
    strided memref: a `linalg.transpose` of a `[K, N]` tensor (the layout
    `qslaw-quantize-weights` keeps) becomes a `memref.transpose` view of
    that tensor's buffer, which the kernels read a block of rows at a time
    through a transposing copy, and the transpose itself is erased. A bf16
    or f16 weight (a model stored in half precision) stays in its type and
    goes to the `..._f32_wbf16` / `..._f32_wf16` entries, which widen each
    block as they copy it (on CUDA such a weight stays for the generated
    kernels). Every CPU call takes the thread count last.
    Other ops and specs are left for
    `qslaw-lower-to-linalg`. Operands cross the call as memrefs
    (`bufferization.to_buffer`, each tagged `qslaw.ukernel_operand` so that
    CSE cannot merge it with an earlier read of the same tensor), the result
    as a fresh buffer.

    With `target=cuda` the calls go to the hand-written CUDA kernels instead
    (`qslaw_cuda_qmatmul_w4_f32`, `..._grad_input_f32`, `..._grad_scale_f32`,
    `..._grad_gamma_f32`, implemented by `libqslaw_cuda_runtime` over `libqslaw_cuda_kernels`),
    with the device pointers of the same buffers. Those kernels cover less:
    4-bit codes, `G` in {32, 64, 128}, `K % 64 == 0`, `K % G == 0` and
    `N % 8 == 0`; other ops stay for the generated kernels. Their mma
    inputs are the activations rounded to `dtype` (bf16 or f16), with f32
    accumulation, scales and outputs. An absent zero-point or bias operand
    is a zero-size heap buffer there (host stack memory cannot stand for
    device memory).
  }];
  let options = [
    Option<"numThreads", "num-threads", "int", "1",
           "Threads the CPU microkernels may use (blocks of W shared over "
           "the OpenMP pool); 0: QSLAW_NUM_THREADS or all cores, read at "
           "run time">,
    Option<"target", "target", "std::string", "\"cpu\"",
           "Whose kernels: cpu (libqslaw_ukernels) or cuda (hand-written "
           "CUDA kernels over device pointers)">,
    Option<"dtype", "dtype", "std::string", "\"bf16\"",
           "target=cuda: type the activations are rounded to for the "
           "tensor cores (bf16 or f16)">,
  ];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::bufferization::BufferizationDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect"];
}

def CrossEntropyToUkernels : Pass<"qslaw-lower-cross-entropy-to-ukernels", "ModuleOp"> {
  let summary = "Call the CPU kernels of the next-token loss and its gradient, which skip ignored rows";
  let description = [{
    Replaces `qslaw.cross_entropy` and `qslaw.cross_entropy_grad` with
    static f32 logits `[..., V]` (rank 2 or more) and i64 labels by calls
    of `qslaw_ukernel_cross_entropy_f32` and
    `qslaw_ukernel_cross_entropy_grad_f32` (`libqslaw_ukernels`). The
    generated code computes every row's max and sum of exp; a training
    step's labels ignore most positions (image and prompt tokens), and the
    kernels read only the counted rows, split over the OpenMP pool, with a
    vectorised polynomial exp (relative error about 1e-7). The gradient's
    ignored rows are written as zeros.

    Logits and labels cross the call as strided views
    (`bufferization.to_buffer` with a dynamic strided layout, tagged
    `qslaw.ukernel_operand`), so the token slice a loss reads is not
    copied; the loss comes back as a one-element buffer, `grad_loss` goes
    in as one. Runs after `qslaw-lower-contractions-to-library`, whose
    head-row selection looks for these ops. i32 labels and dynamic shapes
    stay for `qslaw-lower-to-linalg`.
  }];
  let options = [
    Option<"numThreads", "num-threads", "int", "0",
           "Threads of each call; 0: QSLAW_NUM_THREADS or all cores, read at "
           "run time">,
  ];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::bufferization::BufferizationDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect"];
}

def ContractionsToLibrary : Pass<"qslaw-lower-contractions-to-library", "ModuleOp"> {
  let summary = "Call a GEMM library for large f32 matmuls, batched matmuls and contraction generics";
  let description = [{
    Replaces every linalg op that is a (batched) matrix product - named
    `linalg.matmul` / `linalg.batch_matmul` (with or without transposing
    indexing maps) and `linalg.generic`s with an `out + a * b` body over
    projected permutations (the form the AD pass gives gradients) - by a
    call of `qslaw_ukernel_sgemm_f32`
    (`libqslaw_ukernels`, over the GEMM library chosen at build time), when
    all operands are statically shaped f32 and the op does at least
    `min-flops` floating-point operations. Smaller ones, other dtypes and
    other shapes stay for codegen.

    The loop dims fall into batch (in all three operands), M, N and K
    blocks (`linalg::inferContractionDims`); each block must be contiguous
    in every operand that holds it, in the same order, with batch dims
    leading, so that it collapses into one GEMM dimension without a copy
    (a weight gradient's batch and token dims form one K block; an
    activation's leading dims one M block). Within an operand the two
    non-batch blocks may come in either order (a BLAS transpose flag). A
    `linalg.transpose` of the last two dims feeding an operand is read
    through rather than copied. An
    init that is not a zero fill is copied into the result buffer and
    accumulated into. Operands cross the call as memrefs, tagged like
    `qslaw-lower-to-ukernels`' operands.
  }];
  let options = [
    Option<"minFlops", "min-flops", "int64_t", "1 << 20",
           "Contractions with fewer floating-point operations (2 B M N K) "
           "stay for codegen">,
    Option<"numThreads", "num-threads", "int", "0",
           "Threads per call; 0: QSLAW_NUM_THREADS or all cores, read at "
           "run time">,
    Option<"labelRows", "label-rows", "bool", "true",
           "A training step's head (logits read only by qslaw.cross_entropy "
           "and its gradient, and the input gradient of those logits) "
           "multiplies only the rows whose label counts "
           "(qslaw_ukernel_sgemm_rows_f32)">,
  ];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::bufferization::BufferizationDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect"];
}

def EmulateNarrowType : Pass<"qslaw-emulate-narrow-type", "ModuleOp"> {
  let summary = "Store sub-byte codes packed in i8 memrefs";
  let description = [{
    After bufferisation, memrefs of `i2` and `i4` become linearised `i8`
    memrefs holding 4 or 2 codes per byte, low bits first (the layout of
    onnxruntime's MatMulNBits), through MLIR's narrow-type emulation
    (loads become byte load + shift + mask), including function signatures
    and calls. `i3` does not divide a byte and keeps one code per byte;
    `i1` (masks) keeps one element per byte too.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::ub::UBDialect",
                           "::mlir::vector::VectorDialect"];
}

def TileAndVectorize : Pass<"qslaw-tile-and-vectorize", "ModuleOp"> {
  let summary = "Tile the parallel loops of linalg ops and vectorize what allows it";
  let description = [{
    Contractions (one M, N and K loop, e.g. `linalg.matmul`,
    `linalg.batch_matmul`) get register tiles of 8 (M) x 32 (N) x 1 (K),
    batch loops one by one, so each K step vectorizes to one 8x32 FMA block.
    Every other linalg op on tensors is tiled into rows of its innermost
    loop with `scf.for`: every outer loop, parallel or reduction, by 1;
    the innermost loop whole up to `tile-size` elements, else by its
    largest divisor up to `tile-size` (a prime extent up to 4 x `tile-size`
    stays whole). An innermost extent above 16 that is not a multiple of 16
    and would get such a row (a ViT's 197 tokens) is first split into a
    16-multiple main part and a short rest (`linalg::splitOp`; a reduction's
    rest accumulates into the main part's result), so that no vector has
    an odd length that LLVM legalises through the stack. Tiles are thus
    statically shaped (no partial tiles,
    which would stay scalar) and vectors run along the innermost loop,
    which is the reduced dim of row reductions (softmax, norms). Loops
    that an indexing map uses inside a compound expression such as the
    group index `k floordiv G` are not tiled: the tiled op would see
    tile-local indices. Then tiles with static shapes whose indexing maps
    are projected permutations are vectorized.
    The quantized reductions (group maps with `floordiv`) stay scalar
    loops: their hot shapes go to microkernels.
  }];
  let options = [
    Option<"tileSize", "tile-size", "int64_t", "64",
           "Longest row of the innermost loop per tile, in elements (0: no "
           "tiling)">,
    Option<"vectorize", "vectorize", "bool", "true",
           "Vectorize static tiles with projected-permutation maps">,
    Option<"parallel", "parallel", "bool", "false",
           "Tile the parallel loops of large ops as scf.forall (run on "
           "threads once the pipeline lowers it to OpenMP)">,
    Option<"parallelMinWork", "parallel-min-work", "int64_t", "1 << 16",
           "Iterations below which an op stays on one thread">,
  ];
  let dependentDialects = ["::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::linalg::LinalgDialect"];
}

def VectorMath : Pass<"qslaw-vector-math", "ModuleOp"> {
  let summary = "Reassociable float vector reductions; polynomial exp, erf and tanh";
  let description = [{
    Marks every float `vector.reduction` `reassoc` (LLVM then reduces with
    a tree of vector operations instead of one scalar add per lane) and,
    with `approximate`, replaces f32 `math.exp`, `math.erf` and `math.tanh`
    (scalar and vector) by MLIR's polynomial approximations, which stay in
    vector registers instead of calling libm once per lane. Both change
    only rounding; docs/Pipeline.md gives the measured error.
  }];
  let options = [
    Option<"approximate", "approximate", "bool", "true",
           "Polynomial approximations of f32 exp, erf and tanh">,
  ];
  let dependentDialects = ["::mlir::vector::VectorDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::arith::ArithDialect"];
}

def EarlyDealloc : Pass<"qslaw-early-dealloc", "func::FuncOp"> {
  let summary = "Free each buffer right after its last use";
  let description = [{
    Run after `buffer-deallocation-pipeline`, which places every
    unconditional `memref.dealloc` at the end of the block that allocated
    the buffer: in a straight-line model function every intermediate then
    lives until the return, so a forward's (or a whole training step's)
    peak memory was the sum of all its tensors. Each `memref.dealloc` of a
    `memref.alloc` of the same block moves up to just after the last
    operation of that block that uses the buffer or any view of it
    (subviews, casts, reshapes: `BufferViewFlowAnalysis`); a use inside a
    nested region (a loop body, an OpenMP region) counts as a use by its
    ancestor in the block. Deallocations of other buffers (arguments,
    conditional ones) are left where they are.
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect"];
}

def BoolTensorsAsBytes : Pass<"qslaw-bool-tensors-as-bytes", "func::FuncOp"> {
  let summary = "Keep boolean tensors that reach memory as one byte per element";
  let description = [{
    Run on tensors after elementwise fusion, before tiling. A boolean
    tensor that fusion could not fold into its readers (an attention mask
    built once and read by every layer) is stored as `i1`, one byte each,
    which LLVM cannot load as a vector: its loop vectoriser loads and
    inserts every lane on its own (a third of a training step's masked
    softmax nests went to building masks a byte at a time). Such a tensor
    becomes `i8` (0 or 1) when every reader can take it: an input of a
    `linalg.generic` (whose body then truncates it back to `i1`),
    `tensor.extract`, or `tensor.expand_shape` / `tensor.collapse_shape`
    with such readers. Its writer is a `linalg.generic` whose body does not
    read the output (it now extends the value to `i8` into a fresh
    `tensor.empty`) or a dense constant. A boolean returned, passed to a
    call or written by other ops is left alone, and so are function
    arguments. The values are the same, so the numbers are too.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
}

def WidenOnExtract : Pass<"qslaw-widen-on-extract", "func::FuncOp"> {
  let summary = "Read a half-precision tensor read element by element unwidened";
  let description = [{
    Run on tensors, before bufferization. A bf16/f16 tensor widened to f32
    by an elementwise `linalg.generic` (`arith.extf`, identity maps: a
    weight stored in half precision and read through Cast) whose every
    reader is a `tensor.extract` (an embedding table read by a Gather)
    becomes the readers' source: each extract reads the narrow tensor and
    widens its one element (`arith.extf`), and the widening, which wrote a
    fresh f32 copy of the whole table every call, goes. Widening is exact,
    so the numbers are the same. Widenings with any other reader are left
    (the library GEMMs read theirs narrow themselves,
    `qslaw-lower-contractions-to-library`).
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect"];
}

def FillPerWriter : Pass<"qslaw-fill-per-writer", "func::FuncOp"> {
  let summary = "Give each op that writes into a filled tensor a fill of its own";
  let description = [{
    Run on tensors, before tiling and bufferization. CSE merges identical
    `linalg.fill`s, so one zero-filled tensor becomes the accumulator
    (`outs`) of several contractions and reductions; each then writes a
    buffer of its own, which bufferization fills by copying the shared
    one (a `memref.copy` of zeros per user: a third of the copies in a
    training step's backward). Each destination use of a fill's result,
    directly or through `tensor.expand_shape` / `tensor.collapse_shape`,
    after the first, gets a clone of the fill (of its `tensor.empty` too)
    and of the reshapes, placed just before the user, so it bufferizes in
    place. Reads keep sharing the original. The values are the same, so
    the numbers are too.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
}

def ForwardOutParams : Pass<"qslaw-forward-out-params", "func::FuncOp"> {
  let summary = "Compute a result in the caller's out parameter instead of copying it there";
  let description = [{
    Run after `buffer-results-to-out-params`. That pass hoists a returned
    `memref.alloc` into the out parameter, but a value returned by a call
    (whose results it turns into out parameters of its own, allocated at
    the call) is still allocated and then copied: `@train_step` returning
    what `@apply_step__body` computes copied every parameter and moment
    each step (179 copies and allocations on the 250 M-parameter LLaVA's
    trainer), and `@grad_step__body` copied each gradient a layer call
    wrote.

    `memref.copy %buf, %out` is removed, and `%buf` replaced by `%out`,
    when `%out` is an argument of the function whose only use is the copy
    (an out parameter), `%buf` is a `memref.alloc` of the same static type
    in the same block, and every other use of `%buf` is in that block
    before the copy and makes no view of it (a `memref.dealloc` after it
    is erased). Out parameters are assumed not to alias the inputs, as
    `buffer-results-to-out-params{hoist-static-allocs}` already assumes.
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect"];
}

def OutlineLoopNests : Pass<"qslaw-outline-loop-nests", "ModuleOp"> {
  let summary = "Move each large top-level loop nest of a function into its own function";
  let description = [{
    A model's forward, and far more its training step, is one function of
    thousands of loop nests. LLVM's cost on it is superlinear: O3 and
    instruction selection work per function, and the OpenMP translation
    outlines each parallel region with a `CodeExtractor` whose analysis
    cache scans the whole enclosing function, once per region. On the
    250 M-parameter LLaVA's trainer that was 19 s of translation and
    20 s of O3 (139 s of O3 without the OpenMP outlining).

    Every operation directly in a `func.func` body that has regions (a
    loop nest: `scf.for`, `scf.parallel`, `omp.parallel`, ...) and holds
    at least `min-ops` operations, and every `omp.parallel` (LLVM outlines
    those anyway), becomes a call of a new private function
    `@<caller>__nest<N>` with internal linkage, marked `noinline` (so
    LLVM's inliner does not rebuild the giant function). Values the nest reads from outside are
    arguments, except constants, which are cloned into the callee so that
    loop bounds stay constant there; an index constant that is only the
    index of a scalar read from a 1-D buffer (each parameter's learning
    rate `lrs[i]` in the optimizer step) is an argument, so that the nests
    of equal-shaped parameters are identical and can be merged. The nest's
    results are the callee's results. Run on memrefs, before the LLVM
    conversion. The default `min-ops` (8) catches each trainable tensor's
    squared-gradient sum in the optimizer step, so those of equal-shaped
    tensors merge too (at 16 they stayed inline: 60 loops in one function
    on the 250 M-parameter LLaVA). Private functions that already exist (the layers of
    `qslaw-outline-layers`) get `llvm.bareptr` too when all their buffers
    have static shapes and identity layouts and none is freed inside. A
    public function that another function calls (`@train_step` calls
    `@grad_step` and `@apply_step`) keeps its signature and calling
    convention (what the library's packed entry calls), but its body moves into a private `@<name>__body` that its callers
    call, with bare pointers.
  }];
  let options = [
    Option<"minOps", "min-ops", "int64_t", "8",
           "Smallest nest (operations, nested ones included) outlined">,
  ];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::LLVM::LLVMDialect"];
}

def OutlineLayers : Pass<"qslaw-outline-layers", "ModuleOp"> {
  let summary = "Move each model layer's ops into its own function, at the tensor level";
  let description = [{
    Exporters flatten a model: an L-layer decoder is L copies of the same
    ops in one graph, and every pass of the lowering, and LLVM, then works
    on each copy, so compile time grows with depth. The ops keep their ONNX
    node names (`.../layers.N/...`), in the backward that
    `qslaw-make-train-step` derives from them too. In every function with
    a single block, each run of ops of one layer (the prefix of the name
    through `layers.N`) becomes a call of a new private function
    `@<caller>__layer<N>` (internal linkage, `noinline`). Constants, and
    empty tensors, fills and reshapes/slices of values no run defines,
    belong to no run and stay in the caller; an op whose name gives no
    layer joins a run only when the same layer's ops follow within
    `max-gap` such ops (so the head and loss between the last layer's
    forward and its backward split them). Values the run reads from outside
    are arguments, except what is the same in every layer (unnamed
    constants, empty tensors, fills, and their reshapes; values that CSE
    shared between layers), which is recomputed in the callee; named
    constants (weights, scales, codes) are each layer's own and stay
    arguments. Runs are outlined last first, so a value an earlier layer
    shares is still there to clone. Values read after the run are
    results. A buffer one run writes (by its first call) and later runs
    only pass to calls, what canonicalization leaves of a kernel's output
    tensor read by another kernel (gamma mode's codes, read by the layer's
    forward and its backward), becomes a tensor between them again:
    `to_tensor` at the end of the writer's run, a read-only `to_buffer` at
    each reader. The `qslaw.layer`/`node`/`weight`/`name`
    attributes are dropped from the outlined ops (the graph stage and the
    signature, which need them, have run), so identical layers give
    identical functions for `qslaw-merge-identical-functions`. Runs of
    fewer than `min-ops` ops stay inline.
  }];
  let options = [
    Option<"minOps", "min-ops", "int64_t", "32",
           "Smallest run of a layer's ops (top-level) outlined">,
    Option<"maxGap", "max-gap", "int64_t", "8",
           "Most ops naming no layer that a run spans">,
  ];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::LLVM::LLVMDialect"];
}

def MergeIdenticalFunctions
    : Pass<"qslaw-merge-identical-functions", "ModuleOp"> {
  let summary = "Keep one copy of private functions that are identical";
  let description = [{
    After `qslaw-outline-loop-nests`, a model of L identical decoder (or
    ViT) layers has L identical copies of each of its layer's loop-nest
    functions: the weights and activations they touch are arguments, so the
    copies differ only in their names. LLVM compiles every copy (O3, code
    generation) and the library holds each; this pass keeps the first of
    each class and redirects every use of the others to it, so that code
    size and LLVM's time stop growing with depth. Same idea as IREE's
    executable deduplication and LLVM's MergeFunctions, done before the
    LLVM conversion so that none of the later passes sees the copies.

    Candidates are private functions with a body. Two merge when their
    attributes other than the name are equal (type, linkage, passthrough,
    argument attributes) and their bodies are structurally equal up to
    locations (`OperationEquivalence::isRegionEquivalentTo`). A structural
    hash buckets them first, so the comparison is linear in the module in
    the usual case. Public functions are never merged: they are the
    library's entry points.
  }];
  let statistics = [
    Statistic<"numMerged", "num-merged", "Functions replaced by an identical one">,
  ];
  let dependentDialects = ["::mlir::func::FuncDialect"];
}

def MemRefCopyToLinalg : Pass<"qslaw-memref-copy-to-linalg", "ModuleOp"> {
  let summary = "Turn memref.copy into linalg.copy so that it becomes a kernel";
  let description = [{
    Bufferization copies between buffers with `memref.copy`, which the LLVM
    lowering turns into a host loop or a call of `memrefCopy` - neither can
    read device memory. As `linalg.copy` the copy goes through the same
    parallel-loop to GPU mapping as every other linalg op (strided subviews
    included). Used by the CUDA pipeline before
    `convert-linalg-to-parallel-loops`.

    With `strided-only` (the CPU pipeline, before `convert-linalg-to-loops`)
    only copies that the LLVM lowering cannot make a `memcpy` change: those
    between views that are not contiguous row-major (a rotary half written
    into a head's strided slice). Those became calls of MLIR's generic
    `memrefCopy`, which walks the elements one by one through their
    descriptor.

    With `row-vectors` (the CPU pipeline) such a copy whose innermost
    dimension is a contiguous run on both sides (static shapes, unit
    innermost strides, at most 1024 elements of 8 bits or more) becomes a
    loop nest over the outer dimensions with one `vector.load` and
    `vector.store` per run, not a `linalg.copy`: LLVM cannot prove that the
    two views do not overlap, so it unrolled the element loop into scalar
    moves. With `parallel-min-elems` N > 0, the outer loops of a copy of at
    least N elements are an `scf.parallel` (threads, where the pipeline
    turns parallel loops into OpenMP).
  }];
  let options = [
    Option<"stridedOnly", "strided-only", "bool", "false",
           "Only copies with a side that is not contiguous row-major">,
    Option<"rowVectors", "row-vectors", "bool", "false",
           "Copy contiguous innermost runs with one vector load and store">,
    Option<"parallelMinElems", "parallel-min-elems", "int64_t", "0",
           "With row-vectors: copies of at least this many elements loop in "
           "parallel over their outer dimensions (0: never)">,
  ];
  let dependentDialects = ["::mlir::linalg::LinalgDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect"];
}

def GPUDeviceMemory : Pass<"qslaw-gpu-device-memory", "ModuleOp"> {
  let summary = "Make host code of GPU functions allocate and touch device memory only through the GPU dialect";
  let description = [{
    After `convert-parallel-loops-to-gpu`, the host part of a function may
    still allocate buffers on the host, read constants from host globals and
    read or write memory directly (rank-0 ops, whole-tensor reductions,
    sequential scans: code with no parallel loop to map). With device
    memory none of that may run on the host:

    * `memref.alloc`/`memref.dealloc` become `gpu.alloc`/`gpu.dealloc`;
    * `memref.get_global` of a constant stays: the buffer is device memory
      from here on, made resident by `qslaw-gpu-resident-constants` (the
      weights are uploaded once, not on every call);
    * each run of host operations that read or write memory is moved, as it
      is, into a one-thread `gpu.launch`.

    A value computed from device memory and needed on the host (say, as a
    loop bound) is an error naming the operation; so is `memref.alloca`.
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect",
                           "::mlir::arith::ArithDialect"];
}

def GPUResidentConstants : Pass<"qslaw-gpu-resident-constants", "ModuleOp"> {
  let summary = "Give host code a device copy of each constant global, uploaded at first use and kept";
  let description = [{
    After `qslaw-gpu-device-memory`, a `memref.get_global` in host code
    names a buffer that kernels read from device memory: the model's
    weights, quantization codes and scales, and small tables. Each one gets
    a cache slot (an LLVM global holding a device pointer, null at load).
    Each `memref.get_global` becomes a call
    `qslaw_cuda_resident_constant(slot, host data, bytes)` that uploads the
    data on the first call and then returns the slot. The result is wrapped
    in a memref descriptor. A global destructor of the library gives the
    copies back (`qslaw_cuda_release_resident_constant`), so a library
    loaded again starts with empty slots.

    Only constant globals with a static shape and the identity layout are
    accepted. Anything else is an error naming the global, because host
    writes would have to be mirrored on the device.
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect"];
}

def ExternalWeights : Pass<"qslaw-external-weights", "ModuleOp"> {
  let summary = "Move large constant globals into a weights file that the runtime maps at load";
  let description = [{
    Runs on memref-level host code, after narrow-type emulation (so the
    bytes written are the bytes the code reads) and, on CUDA, after
    `qslaw-gpu-resident-constants`. Each constant `memref.global` with a
    dense initializer of at least `min-bytes` bytes, read through
    `memref.get_global` in a `func.func`, is appended to the weights file
    `file` (format: `include/qslaw/Support/WeightsFile.h`) and removed from
    the module. Its reads become a load of the exported pointer
    `qslaw_weights_base` (set by the runtime to the mapped data) plus the
    tensor's offset, wrapped in a memref descriptor.

    The module gets `qslaw.external_weights = {file, data_bytes, xxh3,
    tensors}`; `qslaw-compile` records it in the library's signature so that
    the runtime checks the file it maps. If no global qualifies, no file is
    written and the module is unchanged apart from the attribute
    (`tensors = 0`). Dense attributes and resource blobs (the imported
    weights) are written from where they are; `i1` data stays in the
    module.

    With `background`, the file is written on a thread of its own while
    the compile goes on (the data's hash, which the module records, is
    computed first); whoever runs the pass waits for it with
    `qslaw::weights::finishBackgroundWrites()` before it uses the file or
    links what refers to it (`qslaw-compile` does, before linking). The
    blobs of the globals it removed are freed when the write ends.

    With `direct`, the file is written with O_DIRECT, past the page cache
    (`qslaw::writeFileAtomically`): on the VMs of `docs/performance.md` a
    gigabyte costs 0.7 s that way against 3 s through the cache (the first
    touch of fresh cache pages), and a large compile leaves the cache to
    what was in it; the first run then reads the file from the disk.
  }];
  let options = [
    Option<"file", "file", "std::string", "\"\"",
           "Path of the weights file to write (required)">,
    Option<"minBytes", "min-bytes", "int64_t", "4096",
           "Constants smaller than this stay in the library">,
    Option<"background", "background", "bool", "false",
           "Write the file on a thread of its own (the caller waits for it)">,
    Option<"direct", "direct", "bool", "false",
           "Write the file with O_DIRECT, past the page cache (through it "
           "where the file system refuses O_DIRECT)">,
  ];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect",
                           "::mlir::memref::MemRefDialect"];
}

def GPUMapParallelLoops : Pass<"qslaw-gpu-map-parallel-loops", "ModuleOp"> {
  let summary = "Tile outermost parallel loops into blocks of threads and map them to the GPU";
  let description = [{
    Each outermost `scf.parallel` outside kernels is tiled by `block-size`
    along its innermost dimension (a short dimension gets the next power of
    two, at least 32) and by 1 along the others, and gets the mapping that
    `convert-parallel-loops-to-gpu` reads: the innermost dimension to
    `threadIdx.x` and `blockIdx.x` (consecutive threads touch consecutive
    elements), the next two to `blockIdx.y`/`blockIdx.z`, further ones
    sequential. Nested parallel loops run sequentially in each thread. The
    tile has constant bounds; a guard masks the threads past the end.
  }];
  let options = [
    Option<"blockSize", "block-size", "int64_t", "256",
           "Threads per block along the innermost dimension (multiple of 32, at most 1024)">,
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect", "::mlir::scf::SCFDialect",
                           "::mlir::affine::AffineDialect"];
}

def GPUEmulateOnCPU : Pass<"qslaw-gpu-emulate-on-cpu", "ModuleOp"> {
  let summary = "Run gpu.launch ops as loops over blocks and threads on the CPU (verification)";
  let description = [{
    Replaces each `gpu.launch` by a loop nest over its grid and block (z,
    y, x) that runs the body once per thread, and `gpu.alloc` /
    `gpu.dealloc` / `gpu.memcpy` by their memref counterparts. Valid for
    kernels whose threads do not communicate (no barrier, shuffle, shared
    memory), which is every kernel the CUDA pipeline generates: the result
    is what the GPU computes, up to floating-point contraction. The CPU
    test machines use it (`qslaw-compile --target=cuda-emulate`) to check
    the GPU mapping end to end against onnxruntime and PyTorch. Launches
    must not be outlined yet.

    Calls to the hand-written CUDA kernels (`qslaw_cuda_qmatmul_w4_*`)
    become calls to the CPU microkernels of the same f32 semantics: the
    emulation checks which ops are replaced and how their operands are
    passed, not the kernels' bf16/f16 rounding.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect"];
}

def GPUMergeIdenticalKernels
    : Pass<"qslaw-gpu-merge-identical-kernels", "ModuleOp"> {
  let summary = "Keep one gpu.module of each class of identical kernels";
  let description = [{
    After `gpu-kernel-outlining`, which gives every launch a kernel in a
    `gpu.module` of its own: a model of L identical layers launches L
    identical kernels, and `gpu-module-to-binary` compiles every module on
    its own (NVPTX, then `ptxas` and `fatbinary` for each architecture).
    Modules holding one kernel that are the same but for their names (the
    kernel's body and attributes, the module's other ops and attributes)
    form a class; the first of each is kept and every `gpu.launch_func` of
    the others launches its kernel instead. Same idea as
    `qslaw-merge-identical-functions` for the CPU's outlined nests. A
    module referenced other than by launches stays.
  }];
  let statistics = [
    Statistic<"numMerged", "num-merged", "Kernel modules merged into an identical one">,
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
}

def GPUPackObjects : Pass<"qslaw-gpu-pack-objects", "ModuleOp"> {
  let summary = "Pack the per-architecture objects of each gpu.binary into one multi-architecture container";
  let description = [{
    `gpu-module-to-binary` leaves one object per target (e.g. sm_80 and
    sm_90a) in a `gpu.binary`, of which the LLVM translation would embed one
    chosen at compile time. This pass packs all of them into one binary
    object in qslaw's container format (`qslaw/Runtime/GpuObjectContainer.h`);
    the CUDA runtime picks the object matching the device it runs on
    (exact architecture first, else the highest lower one whose PTX the
    driver compiles). Assembly (PTX text) objects are packed too. A binary
    whose objects are not NVVM targets is an error.
  }];
}

#endif // QSLAW_CONVERSION_PASSES_TD
