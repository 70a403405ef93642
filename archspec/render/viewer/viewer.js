// The viewer: which blocks are open, laying out what is shown with ELK (one layout at a time,
// the latest request wins), selection, hover highlights, search and the toolbar.
// The root element's data-state is "layout" while ELK runs and "ready" after each drawing.

class Viewer {
  constructor(root, data, markerId) {
    this.root = root;
    this.model = indexModel(data);
    this.expanded = new Set(data.blocks.filter((block) => block.depth <= data.start_depth).map((block) => block.id));
    this.looks = {
      families: Object.fromEntries(data.legend.families.map((look) => [look.name, look])),
      edges: Object.fromEntries(data.legend.edges.map((edge) => [edge.kind, edge])),
    };
    this.markerId = markerId;
    this.elk = new ELK();
    this.sizeOf = boxSizer(this.model);
    this.part = (name) => root.querySelector(".av-" + name);
    this.zoom = new PanZoom(this.part("canvas"), this.part("scene"));
    this.drawn = null;
    this.selected = null;
    this.requested = 0;  // layouts asked for; a finished layout older than the latest is dropped
    this.queue = Promise.resolve();
    this.search = { query: "", matches: [], next: 0 };
    this.wire();
    drawLegend(this.part("legend"), data);
    showTotals(this.part("panel"), data);
  }

  wire() {
    const scene = this.part("scene");
    scene.addEventListener("click", (event) => this.clicked(event));
    scene.addEventListener("mouseover", (event) => this.hover(event.target.closest(".av-box"), true));
    scene.addEventListener("mouseout", (event) => this.hover(event.target.closest(".av-box"), false));
    this.part("canvas").addEventListener("click", (event) => {
      if (event.target === this.part("canvas") && !this.zoom.moved) this.select(null);
    });
    const actions = {
      fit: () => this.fit(),
      "zoom-in": () => this.zoom.zoomCentre(1.25),
      "zoom-out": () => this.zoom.zoomCentre(0.8),
      "expand-all": () => { this.model.blocks.forEach((_, id) => this.expanded.add(id)); this.layout(null, true); },
      "collapse-all": () => { this.expanded.clear(); this.layout(null, true); },
      legend: () => { this.part("legend").hidden = !this.part("legend").hidden; },
    };
    this.root.querySelectorAll(".av-toolbar [data-action]").forEach((button) => {
      button.addEventListener("click", () => actions[button.dataset.action]());
    });
    const box = this.part("search");
    box.addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); this.find(box.value); }
      if (event.key === "Escape") { box.value = ""; this.part("found").textContent = ""; }
    });
  }

  // Lay out and draw what is shown; then centre on `focus` (an id) or fit the whole graph.
  layout(focus, fit) {
    const ticket = ++this.requested;
    this.root.dataset.state = "layout";
    this.queue = this.queue.then(async () => {
      if (ticket !== this.requested) return;  // a newer request replaces this one
      const { graph, boxes } = elkGraph(this.model, this.expanded, this.sizeOf);
      this.status(`laying out ${boxes.length} boxes…`);
      const started = performance.now();
      const laidOut = await this.elk.layout(graph);
      if (ticket !== this.requested) return;
      this.laidOut = laidOut;
      this.drawn = drawScene(this.part("scene"), laidOut, this.model, this.looks, this.markerId);
      const took = Math.round(performance.now() - started);
      this.root.dataset.boxes = String(boxes.length);
      this.root.dataset.layoutMs = String(took);
      this.status(`${boxes.length} boxes · ${this.expanded.size} of ${this.model.blocks.size} blocks open · layout ${took} ms`);
      if (this.selected && this.drawn.elements.has(this.selected)) this.mark(this.selected);
      if (focus && this.drawn.shapes.has(focus)) this.zoom.centreOn(this.drawn.shapes.get(focus));
      else if (fit) this.fit();
      this.root.dataset.state = "ready";
    }).catch((error) => {
      this.root.dataset.state = "error";
      this.status("layout failed: " + error);
    });
    return this.queue;
  }

  fit() {
    if (this.laidOut) this.zoom.fit(this.laidOut.width, this.laidOut.height);
  }

  status(text) { this.part("status").textContent = text; }

  clicked(event) {
    if (this.zoom.moved) return;  // the end of a drag
    const head = event.target.closest(".av-frame-head");
    const target = event.target.closest("[data-id]");
    if (!target) return;
    const id = target.dataset.id;
    if (head || (this.model.isBlock(id) && !this.expanded.has(id))) this.toggle(id);
    this.select(id);
  }

  toggle(id) {
    if (this.expanded.has(id)) this.expanded.delete(id); else this.expanded.add(id);
    if (this.selected === id) this.select(id);  // the panel's button reads open or closed
    return this.layout(id);
  }

  select(id) {
    this.selected = id;
    this.mark(id);
    const panel = this.part("panel");
    if (id === null) { showTotals(panel, this.model.data); return; }
    showPanel(panel, this.model, id, {
      go: (other) => this.reveal(other),
      toggle: (block) => this.toggle(block),
      isOpen: (block) => this.expanded.has(block),
    });
  }

  mark(id) {
    this.root.querySelectorAll(".av-selected").forEach((element) => element.classList.remove("av-selected"));
    const element = id && this.drawn && this.drawn.elements.get(id);
    if (element) element.classList.add("av-selected");
  }

  // Open every block around `id`, select it and centre on it.
  reveal(id) {
    const closed = this.model.chain(id).filter((block) => !this.expanded.has(block));
    closed.forEach((block) => this.expanded.add(block));
    this.select(id);
    if (closed.length || !this.drawn || !this.drawn.shapes.has(id)) return this.layout(id);
    this.zoom.centreOn(this.drawn.shapes.get(id));  // already shown: no new layout
    return this.queue;
  }

  find(query) {
    if (query !== this.search.query) this.search = { query, matches: searchItems(this.model, query), next: 0 };
    const { matches } = this.search;
    const found = this.part("found");
    if (!matches.length) { found.textContent = query.trim() ? "no match" : ""; return; }
    const index = this.search.next % matches.length;
    this.search.next = index + 1;
    found.textContent = `${index + 1} of ${matches.length}`;
    this.reveal(matches[index]);
  }

  hover(box, on) {
    if (!box || !this.drawn) return;
    const id = box.dataset.id;
    box.classList.toggle("av-hover", on);
    const light = (paths, cls, end) => paths.forEach((path) => {
      path.classList.toggle(cls, on);
      const other = this.drawn.elements.get(path.dataset[end]);
      if (other) other.classList.toggle(cls, on);
    });
    light(this.drawn.entering.get(id) || [], "av-in", "from");
    light(this.drawn.leaving.get(id) || [], "av-out", "to");
  }
}

function bootViewers() {
  document.querySelectorAll(".archspec-viewer:not([data-state])").forEach((root, index) => {
    const data = JSON.parse(root.querySelector(".av-data").textContent);
    const markerId = "av-arrow-" + index;
    root.querySelector(".av-arrow").setAttribute("id", markerId);
    const viewer = new Viewer(root, data, markerId);
    root.archspecViewer = viewer;  // for scripts and tests: reveal(id), toggle(id), layout()
    viewer.layout(null, true);
  });
}

bootViewers();
