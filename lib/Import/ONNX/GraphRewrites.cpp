//===- GraphRewrites.cpp - protobuf-level rewrites before import ----------===//
//
// Some exported idioms have data-dependent shapes in ONNX but a static
// meaning. torch's `masked_scatter` (LLaVA merging image features into the
// token embeddings) exports as
//   ScatterND(data, Transpose(NonZero(mask)), Slice(src, 0, nnz))
// whose index count is data dependent; it is exactly "fill the true
// positions of mask, in row-major order, with consecutive elements of src",
// which is static. It becomes a qslaw.MaskedScatter node; the index chain
// becomes dead and is removed.
//
//===----------------------------------------------------------------------===//
#include "GraphRewrites.h"

#include <map>
#include <set>

namespace qslaw::onnx_import {

static const onnx::NodeProto *
producer(const std::map<std::string, const onnx::NodeProto *> &prod,
         const std::string &name) {
  auto it = prod.find(name);
  return it == prod.end() ? nullptr : it->second;
}

int rewriteMaskedScatter(onnx::GraphProto &graph) {
  std::map<std::string, const onnx::NodeProto *> prod;
  for (const auto &n : graph.node())
    for (const auto &o : n.output())
      prod[o] = &n;
  int rewritten = 0;
  for (auto &n : *graph.mutable_node()) {
    if (n.op_type() != "ScatterND" || !n.domain().empty() ||
        n.input_size() != 3)
      continue;
    bool reduces = false;
    for (const auto &a : n.attribute())
      reduces |= a.name() == "reduction" && a.s() != "none";
    if (reduces)
      continue;
    const onnx::NodeProto *tr = producer(prod, n.input(1));
    if (!tr || tr->op_type() != "Transpose")
      continue;
    const onnx::NodeProto *nz = producer(prod, tr->input(0));
    if (!nz || nz->op_type() != "NonZero")
      continue;
    const onnx::NodeProto *sl = producer(prod, n.input(2));
    if (!sl || sl->op_type() != "Slice" || sl->input_size() < 3)
      continue;
    std::string data = n.input(0), mask = nz->input(0), src = sl->input(0);
    n.set_op_type("MaskedScatter");
    n.set_domain("qslaw");
    n.clear_input();
    n.add_input(data);
    n.add_input(mask);
    n.add_input(src);
    ++rewritten;
  }
  if (rewritten)
    removeDeadNodes(graph);
  return rewritten;
}

void removeDeadNodes(onnx::GraphProto &graph) {
  bool changed = true;
  while (changed) {
    changed = false;
    std::set<std::string> used;
    for (const auto &n : graph.node())
      for (const auto &i : n.input())
        used.insert(i);
    for (const auto &o : graph.output())
      used.insert(o.name());
    auto *nodes = graph.mutable_node();
    for (int i = nodes->size() - 1; i >= 0; --i) {
      const auto &n = nodes->Get(i);
      bool live = false;
      for (const auto &o : n.output())
        live |= used.count(o) > 0;
      if (!live) {
        nodes->DeleteSubrange(i, 1);
        changed = true;
      }
    }
  }
}

} // namespace qslaw::onnx_import
