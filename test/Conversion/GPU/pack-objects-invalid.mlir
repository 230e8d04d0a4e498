// RUN: qslaw-opt %s -split-input-file -qslaw-gpu-pack-objects -verify-diagnostics -o /dev/null

// expected-error@below {{'gpu.binary' op object for target #rocdl.target is not an NVVM target}}
gpu.binary @amd [#gpu.object<#rocdl.target, bin = "x">]

// -----

// expected-error@below {{'gpu.binary' op object for sm_80 is LLVM IR (format=offload); pack needs isa, bin or fatbin}}
gpu.binary @ir [#gpu.object<#nvvm.target<chip = "sm_80">, offload = "x">]
