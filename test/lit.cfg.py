import os
import lit.formats
from lit.llvm import llvm_config

config.name = "QSLAW"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["Inputs", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.qslaw_obj_root, "test")

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.add_tool_substitutions(["qslaw-opt", "qslaw-exec", "qslaw-compile", "qslaw-run"],
                                   [config.qslaw_tools_dir])
config.substitutions.append(("%venv_python", config.qslaw_python))
config.substitutions.append(("%qslaw_src", config.qslaw_src_root))

# GPU: the CUDA toolkit's ptxas (gpu-module-to-binary needs it for bin and
# fatbin) and, rarely on test machines, a CUDA driver.
import ctypes
import shutil
cuda_bin = "/usr/local/cuda/bin"
llvm_config.with_environment("PATH", cuda_bin, append_path=True)
if shutil.which("ptxas") or os.path.exists(os.path.join(cuda_bin, "ptxas")):
    config.available_features.add("ptxas")
try:
    ctypes.CDLL("libcuda.so.1")
    config.available_features.add("cuda-driver")
except OSError:
    pass
