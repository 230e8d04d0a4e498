// RUN: qslaw-opt %s -qslaw-gpu-pack-objects | FileCheck %s

// Two per-architecture objects become one binary object holding both, in
// qslaw's container ("QSLAWGPU", version 1, count 2, chip names, sizes).
// CHECK: gpu.binary @kernels [#gpu.object<#nvvm.target<chip = "sm_80">, bin = "QSLAWGPU\01\00\00\00\02\00\00\00\05\00\00\00sm_80\04\00\00\00\00\00\00\00AAAA\06\00\00\00sm_90a\03\00\00\00\00\00\00\00BBB">]
gpu.binary @kernels [#gpu.object<#nvvm.target<chip = "sm_80">, bin = "AAAA">,
                     #gpu.object<#nvvm.target<chip = "sm_90a">, bin = "BBB">]
