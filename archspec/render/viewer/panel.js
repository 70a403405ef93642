// The side panel (every figure of the clicked node or block), the search and the legend.
// Numbers are formatted as archspec.render.figures formats them in the reports.

function exactCount(value) { return Number(value).toLocaleString("en-US"); }

function humanCount(value) {
  for (const [unit, size] of [["T", 1e12], ["G", 1e9], ["M", 1e6], ["K", 1e3]]) {
    if (Math.abs(value) >= size) return (value / size).toFixed(2) + " " + unit;
  }
  return String(value);
}

function humanBytes(value) {
  for (const [unit, size] of [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]]) {
    if (value >= size) return (value / size).toFixed(2) + " " + unit;
  }
  return value + " B";
}

function opsText(value) {
  return Math.abs(value) >= 1000 ? `${exactCount(value)} (${humanCount(value)})` : exactCount(value);
}

function fieldText(field, note) {
  if (!field) return note || "none (does not depend on the first input)";
  const size = field.size.join("×");
  if (field.global) return `global: reads the whole map (${size})`;
  return `${size}, jump ${field.jump.join("×")}, offset ${field.offset.join(", ")}`;
}

function element(name, attrs, parent, text) {
  const made = document.createElement(name);
  Object.entries(attrs || {}).forEach(([key, value]) => made.setAttribute(key, value));
  if (text !== undefined) made.textContent = text;
  if (parent) parent.appendChild(made);
  return made;
}

function addRow(table, key, title, text, value) {
  const row = element("tr", { "data-key": key }, table);
  element("th", {}, row, title);
  const cell = element("td", value === undefined ? {} : { "data-value": String(value) }, row);
  if (text instanceof Node) cell.appendChild(text); else cell.textContent = text;
  return cell;
}

// Links to other items (a node's inputs and outputs): a click reveals and selects that item.
function itemLinks(ids, model, go) {
  const list = element("span", { class: "av-links" });
  ids.forEach((id) => {
    const link = element("a", { href: "#", "data-go": id }, list, model.item(id).id);
    link.addEventListener("click", (event) => { event.preventDefault(); go(id); });
  });
  if (!ids.length) list.textContent = "none";
  return list;
}

const SAVED_NOTE = "activations autograd keeps for the backward pass; a tensor kept by several ops counts once, " +
  "at the first op that keeps it (a conv after a relu keeps the relu's output: 0 B here)";

function figureRows(table, item) {
  if (item.params === undefined) return;
  addRow(table, "params", "Params", exactCount(item.params), item.params);
  addRow(table, "macs", "MACs", opsText(item.macs), item.macs);
  addRow(table, "flops", "FLOPs", opsText(item.flops), item.flops);
  const saved = addRow(table, "saved", "Saved for backward", humanBytes(item.saved), item.saved);
  saved.parentNode.title = SAVED_NOTE;
}

// Fills `panel` with everything known about item `id`; `actions.go(id)` reveals another item,
// `actions.toggle(id)` opens or closes a block.
function showPanel(panel, model, id, actions) {
  panel.textContent = "";
  const item = model.item(id);
  const block = model.isBlock(id);
  element("h3", {}, panel, item.id);
  element("p", { class: "av-kind" }, panel, block ? item.label : item.label + (item.kind === "op" ? "" : ` (${item.kind})`));
  const table = element("table", { class: "av-facts" }, panel);
  if (block) {
    addRow(table, "kind", "Block", item.kind);
    addRow(table, "ops", "Ops", exactCount(item.ops), item.ops);
    addRow(table, "shape", "Output shape", item.shape);
    figureRows(table, item);
    const button = element("button", { class: "av-toggle", "data-action": "toggle" }, panel,
                           actions.isOpen(id) ? "collapse block" : "expand block");
    button.addEventListener("click", () => actions.toggle(id));
    return;
  }
  addRow(table, "op", "Op", item.op);
  const args = Object.entries(item.args);
  addRow(table, "args", "Arguments", args.length ? args.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ") : "none");
  addRow(table, "source", "Source", item.source || "-");
  addRow(table, "shape", "Output shape", item.shape);
  if (item.module !== undefined && item.module !== item.id) addRow(table, "module", "Weights of", item.module);
  if (item.trainable === false) addRow(table, "frozen", "Trainable", "no (frozen)");
  figureRows(table, item);
  if (item.kind === "op") addRow(table, "field", "Receptive field", fieldText(item.field, model.data.field_note));
  addRow(table, "inputs", "Inputs", itemLinks(model.inputsOf.get(id), model, actions.go));
  addRow(table, "outputs", "Outputs", itemLinks(model.outputsOf.get(id), model, actions.go));
}

function showTotals(panel, data) {
  panel.textContent = "";
  element("h3", {}, panel, data.name);
  if (data.summary) element("p", { class: "av-kind" }, panel, data.summary);
  const table = element("table", { class: "av-facts" }, panel);
  addRow(table, "params", "Params", exactCount(data.totals.params), data.totals.params);
  addRow(table, "macs", "MACs", opsText(data.totals.macs), data.totals.macs);
  addRow(table, "flops", "FLOPs", opsText(data.totals.flops), data.totals.flops);
  addRow(table, "saved", "Saved for backward", humanBytes(data.totals.saved), data.totals.saved);
  addRow(table, "ops", "Ops", exactCount(data.totals.ops), data.totals.ops);
  element("p", { class: "av-hint" }, panel,
          "Click a box for its figures, a ▸ block to open it, a ▾ label to close it. Drag to pan, wheel to zoom.");
}

// Items matching a query, best first: the exact name, a name ending in it, the op, the shape
// (`256x14x14`, `256×14×14` or `256 14 14`), then names and labels that contain it.
function searchItems(model, query) {
  const q = query.trim().toLowerCase();
  if (!q) return [];
  const shape = q.replace(/[×*\s,]+/g, "x");
  const rank = (item) => {
    const id = item.id.toLowerCase();
    if (id === q) return 0;
    if (id.endsWith("." + q)) return 1;
    if ((item.op || item.kind) === q) return 2;
    if ((item.shape || "").split(", ").includes(shape)) return 3;
    if (id.includes(q) || (item.label || "").toLowerCase().includes(q)) return 4;
    return -1;
  };
  const found = [];
  [...model.data.nodes, ...model.data.blocks].forEach((item, order) => {
    const score = rank(item);
    if (score >= 0) found.push([score, order, item.id]);
  });
  return found.sort((a, b) => a[0] - b[0] || a[1] - b[1]).map((entry) => entry[2]);
}

function drawLegend(legend, data) {
  legend.textContent = "";
  const used = new Set(data.nodes.map((node) => node.family));
  if (data.blocks.length) used.add("block");
  element("div", { class: "av-legend-title" }, legend, "Legend");
  data.legend.families.filter((look) => used.has(look.name)).forEach((look) => {
    const row = element("div", { class: "av-legend-row", "data-family": look.name }, legend);
    element("span", { class: "av-swatch", style: `background:${look.fill};border-color:${look.border}` }, row);
    element("span", {}, row, look.words);
  });
  const kinds = new Set(data.edges.map((edge) => edge[2]));
  data.legend.edges.filter((edge) => kinds.has(edge.kind)).forEach((edge) => {
    const row = element("div", { class: "av-legend-row" }, legend);
    element("span", { class: "av-line", style: `border-top:2px ${edge.dashed ? "dashed" : "solid"} ${edge.color}` }, row);
    element("span", {}, row, edge.words);
  });
}
