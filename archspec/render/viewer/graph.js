// The viewer's model (archspec.render.viewer.model's JSON, indexed) and the visible graph handed
// to ELK: every block that is not expanded stands for all the nodes inside it, so ELK lays out
// only what is shown.

// ELK's layered algorithm over the whole hierarchy at once; shapes and edge routes come back in
// root coordinates, so drawing needs no per-container offsets.
const ELK_OPTIONS = {
  "elk.algorithm": "layered",
  "elk.direction": "DOWN",
  "elk.hierarchyHandling": "INCLUDE_CHILDREN",
  "elk.layered.considerModelOrder.strategy": "NODES_AND_EDGES",  // branches in spec order
  "elk.layered.spacing.nodeNodeBetweenLayers": "26",
  "elk.spacing.nodeNode": "16",
  "elk.spacing.edgeNode": "10",
  "elk.layered.spacing.edgeNodeBetweenLayers": "10",
  "org.eclipse.elk.json.shapeCoords": "ROOT",
  "org.eclipse.elk.json.edgeCoords": "ROOT",
};
const BLOCK_PADDING = "[top=30,left=10,bottom=10,right=10]";  // the top leaves room for the label

function indexModel(data) {
  const nodes = new Map(data.nodes.map((node) => [node.id, node]));
  const blocks = new Map(data.blocks.map((block) => [block.id, block]));
  const children = new Map([[null, []]]);
  data.blocks.forEach((block) => children.set(block.id, []));
  const chains = new Map();  // block -> its enclosing blocks and itself, outermost first
  const chainOf = (blockId) => {
    if (blockId === null) return [];
    if (!chains.has(blockId)) chains.set(blockId, [...chainOf(blocks.get(blockId).parent), blockId]);
    return chains.get(blockId);
  };
  const listed = new Set();
  data.nodes.forEach((node) => {  // children in the order their first op runs
    chainOf(node.parent).forEach((blockId) => {
      if (!listed.has(blockId)) {
        listed.add(blockId);
        children.get(blocks.get(blockId).parent).push(blockId);
      }
    });
    children.get(node.parent).push(node.id);
  });
  const inputsOf = new Map(), outputsOf = new Map();
  data.nodes.forEach((node) => { inputsOf.set(node.id, []); outputsOf.set(node.id, []); });
  data.edges.forEach(([source, target]) => {
    outputsOf.get(source).push(target);
    inputsOf.get(target).push(source);
  });
  return {
    data, nodes, blocks, children, inputsOf, outputsOf,
    item: (id) => nodes.get(id) || blocks.get(id),
    isBlock: (id) => blocks.has(id),
    // the blocks around an item, outermost first (a block's chain includes itself)
    chain: (id) => (blocks.has(id) ? chainOf(id).slice(0, -1) : chainOf(nodes.get(id).parent)),
  };
}

// The shown box an item is drawn in: its outermost closed enclosing block, or itself.
function shownAs(model, expanded, id) {
  for (const blockId of model.chain(id)) {
    if (!expanded.has(blockId)) return blockId;
  }
  return id;
}

// An open block at least as wide as its label. ELK 0.12.1 reads a compound node's minimum size
// transposed under direction DOWN, so the width goes second (tests/test_view.py checks the frames).
function frameOptions(labelWidth) {
  return { "elk.padding": BLOCK_PADDING, "elk.nodeSize.constraints": "[MINIMUM_SIZE]",
           "elk.nodeSize.minimum": `(20, ${Math.ceil(labelWidth)})` };
}

// The ELK graph of what is shown: open blocks as compound nodes, closed blocks and ops as boxes
// of `sizes.box(id)`; one edge per pair of shown boxes, its kind "data" where any of its IR edges is.
function elkGraph(model, expanded, sizes) {
  const boxes = [];
  const shape = (id) => {
    if (model.isBlock(id) && expanded.has(id)) {
      return { id, layoutOptions: frameOptions(sizes.frame(id)), children: model.children.get(id).map(shape) };
    }
    boxes.push(id);
    return { id, ...sizes.box(id) };
  };
  const children = model.children.get(null).map(shape);
  const edges = new Map();
  model.data.edges.forEach(([source, target, kind, tensor]) => {
    const from = shownAs(model, expanded, source), to = shownAs(model, expanded, target);
    if (from === to) return;
    const key = from + "\u0000" + to;
    const known = edges.get(key);
    if (!known) edges.set(key, { id: "e" + edges.size, sources: [from], targets: [to], kind, tensor });
    else if (kind === "data") known.kind = kind;
  });
  return { graph: { id: "root", layoutOptions: ELK_OPTIONS, children, edges: [...edges.values()] }, boxes };
}

// Every shape of a laid-out ELK graph by id ({x, y, width, height, children?}), depth first.
function shapesOf(graph, into = new Map()) {
  (graph.children || []).forEach((child) => {
    into.set(child.id, child);
    shapesOf(child, into);
  });
  return into;
}
