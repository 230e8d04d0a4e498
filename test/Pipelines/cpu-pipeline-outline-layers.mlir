// RUN: qslaw-opt %s -qslaw-cpu-bufferize | FileCheck %s
// RUN: qslaw-opt %s -qslaw-cpu-bufferize="outline-layers=false" | FileCheck %s --check-prefix=OFF

// Two identical layers of 32 ops (the pass's default min-ops): by default
// the CPU pipeline outlines them at the tensor level, after elementwise
// fusion, and keeps one copy, which it bufferizes (memref arguments) and
// lowers once; with outline-layers=false they stay inline.
// CHECK-LABEL: func.func @forward(
// CHECK: call @forward__layer0(
// CHECK: call @forward__layer0(
// CHECK: func.func private @forward__layer0({{.*}}memref<16xf32>
// CHECK-NOT: func.func private @forward__layer1(
// OFF-NOT: __layer

func.func @forward(%x: tensor<16xf32>) -> tensor<16xf32> {
  %w0 = arith.constant {qslaw.name = "w0"} dense<1.5> : tensor<16xf32>
  %w1 = arith.constant {qslaw.name = "w1"} dense<2.5> : tensor<16xf32>
  %e = tensor.empty() : tensor<16xf32>
  %v0 = linalg.mul ins(%x, %w0 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op0")
  %v1 = linalg.add ins(%v0, %v0 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op1")
  %v2 = linalg.mul ins(%v1, %w0 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op2")
  %v3 = linalg.add ins(%v2, %v2 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op3")
  %v4 = linalg.mul ins(%v3, %w0 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op4")
  %v5 = linalg.add ins(%v4, %v4 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op5")
  %v6 = linalg.mul ins(%v5, %w0 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op6")
  %v7 = linalg.add ins(%v6, %v6 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op7")
  %v8 = linalg.mul ins(%v7, %w0 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op8")
  %v9 = linalg.add ins(%v8, %v8 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op9")
  %v10 = linalg.mul ins(%v9, %w0 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op10")
  %v11 = linalg.add ins(%v10, %v10 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op11")
  %v12 = linalg.mul ins(%v11, %w0 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op12")
  %v13 = linalg.add ins(%v12, %v12 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op13")
  %v14 = linalg.mul ins(%v13, %w0 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op14")
  %v15 = linalg.add ins(%v14, %v14 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op15")
  %v16 = linalg.mul ins(%v15, %w0 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op16")
  %v17 = linalg.add ins(%v16, %v16 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op17")
  %v18 = linalg.mul ins(%v17, %w0 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op18")
  %v19 = linalg.add ins(%v18, %v18 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op19")
  %v20 = linalg.mul ins(%v19, %w0 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op20")
  %v21 = linalg.add ins(%v20, %v20 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op21")
  %v22 = linalg.mul ins(%v21, %w0 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op22")
  %v23 = linalg.add ins(%v22, %v22 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op23")
  %v24 = linalg.mul ins(%v23, %w0 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op24")
  %v25 = linalg.add ins(%v24, %v24 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op25")
  %v26 = linalg.mul ins(%v25, %w0 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op26")
  %v27 = linalg.add ins(%v26, %v26 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op27")
  %v28 = linalg.mul ins(%v27, %w0 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op28")
  %v29 = linalg.add ins(%v28, %v28 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op29")
  %v30 = linalg.mul ins(%v29, %w0 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op30")
  %v31 = linalg.add ins(%v30, %v30 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.0/op31")
  %v32 = linalg.mul ins(%v31, %w1 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op0")
  %v33 = linalg.add ins(%v32, %v32 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op1")
  %v34 = linalg.mul ins(%v33, %w1 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op2")
  %v35 = linalg.add ins(%v34, %v34 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op3")
  %v36 = linalg.mul ins(%v35, %w1 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op4")
  %v37 = linalg.add ins(%v36, %v36 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op5")
  %v38 = linalg.mul ins(%v37, %w1 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op6")
  %v39 = linalg.add ins(%v38, %v38 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op7")
  %v40 = linalg.mul ins(%v39, %w1 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op8")
  %v41 = linalg.add ins(%v40, %v40 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op9")
  %v42 = linalg.mul ins(%v41, %w1 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op10")
  %v43 = linalg.add ins(%v42, %v42 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op11")
  %v44 = linalg.mul ins(%v43, %w1 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op12")
  %v45 = linalg.add ins(%v44, %v44 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op13")
  %v46 = linalg.mul ins(%v45, %w1 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op14")
  %v47 = linalg.add ins(%v46, %v46 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op15")
  %v48 = linalg.mul ins(%v47, %w1 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op16")
  %v49 = linalg.add ins(%v48, %v48 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op17")
  %v50 = linalg.mul ins(%v49, %w1 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op18")
  %v51 = linalg.add ins(%v50, %v50 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op19")
  %v52 = linalg.mul ins(%v51, %w1 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op20")
  %v53 = linalg.add ins(%v52, %v52 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op21")
  %v54 = linalg.mul ins(%v53, %w1 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op22")
  %v55 = linalg.add ins(%v54, %v54 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op23")
  %v56 = linalg.mul ins(%v55, %w1 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op24")
  %v57 = linalg.add ins(%v56, %v56 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op25")
  %v58 = linalg.mul ins(%v57, %w1 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op26")
  %v59 = linalg.add ins(%v58, %v58 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op27")
  %v60 = linalg.mul ins(%v59, %w1 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op28")
  %v61 = linalg.add ins(%v60, %v60 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op29")
  %v62 = linalg.mul ins(%v61, %w1 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op30")
  %v63 = linalg.add ins(%v62, %v62 : tensor<16xf32>, tensor<16xf32>) outs(%e : tensor<16xf32>) -> tensor<16xf32> loc("/m/layers.1/op31")
  return %v63 : tensor<16xf32>
}
