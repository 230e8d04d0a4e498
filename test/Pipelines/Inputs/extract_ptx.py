"""Writes the PTX text of the first assembly object of a gpu.binary (as
printed by gpu-module-to-binary{format=isa}) to a file, for ptxas."""
import re
import sys

text = open(sys.argv[1]).read()
m = re.search(r'assembly = "((?:[^"\\]|\\.)*)"', text)
if not m:
    sys.exit("no assembly object in " + sys.argv[1])
ptx = re.sub(r"\\([0-9A-Fa-f]{2})", lambda g: chr(int(g.group(1), 16)), m.group(1))
ptx = ptx.replace('\\"', '"').replace("\\\\", "\\")
open(sys.argv[2], "w").write(ptx)
