func.func @main(%x: tensor<3x64xf32>, %q: tensor<8x64xi4>, %s: tensor<8x2xf32>) -> tensor<3x8xf32> {
  %y = qslaw.qmatmul %x, %q scales(%s) <bits = 4, group = 32, sym> : (tensor<3x64xf32>, tensor<8x64xi4>, tensor<8x2xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}
func.func @dynamic(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  return %x : tensor<?x64xf32>
}
