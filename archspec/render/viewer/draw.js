// Drawing a laid-out graph as SVG (open blocks as frames, closed blocks and ops as boxes, edges
// as ELK routed them), and panning and zooming it with one transform on the scene group.

const SVG_NS = "http://www.w3.org/2000/svg";
const FONT_FAMILY = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";
const TEXT_FONT = "11px " + FONT_FAMILY;
const TITLE_FONT = "600 12px " + FONT_FAMILY;
const BOX = { padX: 10, padY: 6, line: 15, minWidth: 64 };
const HEADER = 30;  // an open block's label strip (BLOCK_PADDING's top)

function svgElement(name, attrs, parent) {
  const element = document.createElementNS(SVG_NS, name);
  Object.entries(attrs || {}).forEach(([key, value]) => element.setAttribute(key, value));
  if (parent) parent.appendChild(element);
  return element;
}

function svgText(parent, x, y, text, cls) {
  const element = svgElement("text", { x, y, class: cls }, parent);
  element.textContent = text;
  return element;
}

// The text lines of a box: the first in bold.
function boxLines(model, id) {
  const item = model.item(id);
  if (model.isBlock(id)) {
    const params = item.params ? " · " + humanCount(item.params) + " params" : "";
    return ["▸ " + item.label, item.ops + " ops" + params, item.shape];
  }
  if (item.kind !== "op") return [item.label, item.shape];
  return [item.label, item.short === item.label ? item.shape : item.short + " · " + item.shape];
}

function frameLabel(block) { return "▾ " + block.label; }

// Sizes for ELK: `box(id)` of a shown box, `frame(id)` the width an open block's label needs.
function boxSizer(model) {
  const context = document.createElement("canvas").getContext("2d");
  const width = (text, font) => { context.font = font; return context.measureText(text).width; };
  return {
    box: (id) => {
      const lines = boxLines(model, id);
      const widest = Math.max(...lines.map((line, i) => width(line, i === 0 ? TITLE_FONT : TEXT_FONT)));
      return { width: Math.ceil(Math.max(BOX.minWidth, widest + 2 * BOX.padX)),
               height: lines.length * BOX.line + 2 * BOX.padY };
    },
    frame: (id) => width(frameLabel(model.item(id)), TITLE_FONT) + 20,
  };
}

function edgePath(edge) {
  return (edge.sections || []).map((section) => {
    const points = [section.startPoint, ...(section.bendPoints || []), section.endPoint];
    return "M" + points.map((p) => p.x + "," + p.y).join("L");
  }).join("");
}

// Draws `laidOut` into `scene`; returns what the page needs to highlight: element by id, and the
// edge elements by the box they leave and enter.
function drawScene(scene, laidOut, model, looks, markerId) {
  scene.textContent = "";
  const frames = svgElement("g", { class: "av-frames" }, scene);
  const lines = svgElement("g", { class: "av-edges" }, scene);
  const boxes = svgElement("g", { class: "av-boxes" }, scene);
  const drawn = { elements: new Map(), leaving: new Map(), entering: new Map(), shapes: shapesOf(laidOut) };
  drawn.shapes.forEach((shape, id) => {
    const element = shape.children ? drawFrame(frames, shape, model.item(id)) : drawBox(boxes, shape, model, id, looks);
    element.dataset.id = id;
    drawn.elements.set(id, element);
    drawn.leaving.set(id, []);
    drawn.entering.set(id, []);
  });
  (laidOut.edges || []).forEach((edge) => {
    const look = looks.edges[edge.kind];
    const path = svgElement("path", { d: edgePath(edge), class: "av-edge av-" + edge.kind, "marker-end": `url(#${markerId})` }, lines);
    if (look) {  // shortcuts, bridges and size references as the diagram draws them
      path.style.stroke = look.color;
      if (look.dashed) path.style.strokeDasharray = "5 3";
    }
    svgElement("title", {}, path).textContent = edge.tensor;
    drawn.leaving.get(edge.sources[0]).push(path);
    drawn.entering.get(edge.targets[0]).push(path);
    path.dataset.from = edge.sources[0];
    path.dataset.to = edge.targets[0];
  });
  return drawn;
}

function drawFrame(parent, shape, block) {
  const group = svgElement("g", { class: "av-frame" }, parent);
  svgElement("rect", { x: shape.x, y: shape.y, width: shape.width, height: shape.height, rx: 6 }, group);
  const head = svgElement("g", { class: "av-frame-head" }, group);
  svgElement("rect", { x: shape.x, y: shape.y, width: shape.width, height: HEADER - 6, rx: 6 }, head);
  svgText(head, shape.x + 8, shape.y + 16, frameLabel(block), "av-frame-label");
  svgElement("title", {}, head).textContent = `${block.id}: click to collapse`;
  return group;
}

function drawBox(parent, shape, model, id, looks) {
  const item = model.item(id);
  const block = model.isBlock(id);
  const look = looks.families[block ? "block" : item.family] || looks.families.other;
  const group = svgElement("g", { class: "av-box" + (block ? " av-closed" : " av-" + item.kind) }, parent);
  svgElement("rect", { x: shape.x, y: shape.y, width: shape.width, height: shape.height,
                       rx: item.kind === "op" || block ? 4 : shape.height / 2, fill: look.fill, stroke: look.border }, group);
  boxLines(model, id).forEach((line, i) => {
    svgText(group, shape.x + shape.width / 2, shape.y + BOX.padY + BOX.line * (i + 1) - 4, line, i ? "av-sub" : "av-title");
  });
  svgElement("title", {}, group).textContent = block ? `${id}: click to expand` : `${id} (${item.op})`;
  return group;
}

// Pan (drag) and zoom (wheel, buttons) of the scene; `moved` tells a drag from a click.
class PanZoom {
  constructor(svg, scene) {
    Object.assign(this, { svg, scene, x: 0, y: 0, k: 1, moved: false });
    svg.addEventListener("wheel", (event) => {
      event.preventDefault();
      const [px, py] = this.pointer(event);
      this.zoomAt(px, py, Math.exp(-event.deltaY * 0.0015));
    }, { passive: false });
    svg.addEventListener("pointerdown", (event) => this.drag(event));
  }

  pointer(event) {
    const box = this.svg.getBoundingClientRect();
    return [event.clientX - box.left, event.clientY - box.top];
  }

  drag(event) {
    if (event.button !== 0) return;
    const start = { x: event.clientX, y: event.clientY, panX: this.x, panY: this.y };
    this.moved = false;
    const move = (e) => {
      const dx = e.clientX - start.x, dy = e.clientY - start.y;
      if (Math.abs(dx) + Math.abs(dy) > 4) this.moved = true;
      if (this.moved) this.set(start.panX + dx, start.panY + dy, this.k);
    };
    const up = () => { window.removeEventListener("pointermove", move); window.removeEventListener("pointerup", up); };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  }

  set(x, y, k) {
    Object.assign(this, { x, y, k: Math.min(4, Math.max(0.03, k)) });
    this.scene.setAttribute("transform", `translate(${this.x},${this.y}) scale(${this.k})`);
  }

  zoomAt(px, py, factor) {
    const k = Math.min(4, Math.max(0.03, this.k * factor));
    this.set(px - (px - this.x) * (k / this.k), py - (py - this.y) * (k / this.k), k);
  }

  zoomCentre(factor) {
    const { width, height } = this.svg.getBoundingClientRect();
    this.zoomAt(width / 2, height / 2, factor);
  }

  // The whole graph in view; a tall one fills the width, starting at its top.
  fit(graphWidth, graphHeight) {
    const { width, height } = this.svg.getBoundingClientRect();
    let k = Math.min(1.2, (width - 40) / graphWidth, (height - 40) / graphHeight);
    if (k < 0.4) k = Math.min(1, Math.max(0.4, (width - 40) / graphWidth));
    const top = graphHeight * k < height ? (height - graphHeight * k) / 2 : 20;
    this.set((width - graphWidth * k) / 2, top, k);
  }

  // Centre a shape; one taller than the view (an opened block) shows from its top.
  centreOn(shape, minimumZoom = 0.8) {
    const { width, height } = this.svg.getBoundingClientRect();
    const k = Math.max(this.k, minimumZoom);
    const y = shape.height * k > height - 40 ? 20 - shape.y * k : height / 2 - (shape.y + shape.height / 2) * k;
    this.set(width / 2 - (shape.x + shape.width / 2) * k, y, k);
  }
}
