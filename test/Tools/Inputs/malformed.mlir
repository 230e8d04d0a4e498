func.func @main(%x: tensor<3x64xf32>) -> tensor<3x64xf32> {
  // a typo below
  %y = qslaw.qmatmul %x, : tensor<3x64xf32>
  return %y : tensor<3x64xf32>
}
