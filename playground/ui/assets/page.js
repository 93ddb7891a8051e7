// The page's own behaviour in the browser, loaded once through launch(head=...): the grid's views, picking
// results to compare, the compare view (one zoom and pan for every picture), scrolling to the results, and
// a question before leaving a page whose jobs still run.
// Everything here is the visitor's own view of a run: nothing goes to the server but Resume and the History
// row a visitor opens (through the gr.HTML components' trigger()), and Stop (the tab's own Stop button).
(() => {
  if (window.kx) return;
  const root = document.documentElement;
  const picked = {}; // tab -> Set of "provider|model"
  const pending = {}; // tab -> when Generate was pressed: bring the results into view once they show
  const MAX_PICK = 4;
  const attr = (tab, what) => `data-kx-${tab}-${what}`;
  const setOption = (tab, what, value) => root.setAttribute(attr(tab, what), value);
  const ACTIVE = '.kx-tile[data-phase="queued"], .kx-tile[data-phase="running"]';

  // Leaving the page stops its runs (the server keeps their jobs as stopped, with task ids for Resume):
  // while a job is queued or running, the browser asks first.
  window.addEventListener("beforeunload", (event) => {
    if (!document.querySelector(ACTIVE)) return;
    event.preventDefault();
    event.returnValue = "";
  });

  function gridOf(node) {
    return node && node.closest ? node.closest(".kx-grid") : null;
  }

  function picks(tab) {
    return (picked[tab] = picked[tab] || new Set());
  }

  function sync(element) {
    const grid = element.querySelector(".kx-grid");
    if (!grid) return;
    const tab = grid.dataset.tab;
    const chosen = picks(tab);
    let count = 0;
    grid.querySelectorAll(".kx-tile").forEach((tile) => {
      const box = tile.querySelector(".kx-pick-box");
      if (!box) return;
      box.checked = chosen.has(tile.dataset.key);
      tile.classList.toggle("kx-picked", box.checked);
      count += box.checked ? 1 : 0;
    });
    const go = grid.querySelector(".kx-compare-go");
    if (go) {
      go.disabled = count < 2 || count > MAX_PICK;
      go.textContent = count >= 2 ? `Compare ${count}` : "Compare";
    }
  }

  function openPanel(tab, id) {
    setOption(tab, "view", "panels");
    const panel = document.getElementById(id);
    if (!panel) return;
    requestAnimationFrame(() => {
      panel.scrollIntoView({ behavior: "smooth", block: "start" });
      panel.classList.add("kx-flash");
      setTimeout(() => panel.classList.remove("kx-flash"), 1500);
    });
  }

  document.addEventListener("click", (event) => {
    const target = event.target;
    const grid = gridOf(target);
    if (!grid) return;
    const tab = grid.dataset.tab;
    const seg = target.closest("[data-view],[data-show]");
    if (seg) {
      if (seg.dataset.view) setOption(tab, "view", seg.dataset.view);
      if (seg.dataset.show) setOption(tab, "show", seg.dataset.show);
      return;
    }
    const action = target.closest("[data-action]");
    if (!action) return;
    const kind = action.dataset.action;
    if (kind === "open") openPanel(tab, action.closest(".kx-tile").dataset.open);
    if (kind === "compare") openCompare(grid);
    if (kind === "stop") document.querySelector(`#${tab}-stop`)?.click();
  });

  document.addEventListener("change", (event) => {
    const box = event.target;
    if (!box.classList || !box.classList.contains("kx-pick-box")) return;
    const grid = gridOf(box);
    const chosen = picks(grid.dataset.tab);
    const key = box.closest(".kx-tile").dataset.key;
    if (box.checked) chosen.add(key);
    else chosen.delete(key);
    sync(grid.parentElement);
  });

  // --- the compare view: 2 to 4 results (and an edit's input) with one zoom and pan ---------------------

  function openCompare(grid) {
    const chosen = picks(grid.dataset.tab);
    const tiles = [...grid.querySelectorAll(".kx-tile")].filter((t) => chosen.has(t.dataset.key) && t.dataset.full);
    if (tiles.length < 2) return;
    const items = tiles.slice(0, MAX_PICK).map((t) => ({ src: t.dataset.full, name: t.dataset.name }));
    if (grid.dataset.input) items.unshift({ src: grid.dataset.input, name: "Input" });
    closeCompare();
    const overlay = document.createElement("div");
    overlay.className = "kx-compare";
    overlay.id = "kx-compare";
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-label", "Compare results");
    overlay.innerHTML =
      '<div class="kx-compare-bar"><span class="kx-compare-help">Scroll or pinch to zoom, drag to pan: every ' +
      "picture follows. Double-click to fit.</span>" +
      '<button type="button" class="kx-btn" data-zoom="in" title="Zoom in">+</button>' +
      '<button type="button" class="kx-btn" data-zoom="out" title="Zoom out">−</button>' +
      '<button type="button" class="kx-btn" data-zoom="fit" title="Fit every picture">Fit</button>' +
      '<button type="button" class="kx-btn kx-close" data-zoom="close" title="Close (Esc)">Close</button></div>' +
      '<div class="kx-panes"></div>';
    const panes = overlay.querySelector(".kx-panes");
    items.forEach((item) => {
      const pane = document.createElement("figure");
      pane.className = "kx-pane";
      const stage = document.createElement("div");
      stage.className = "kx-stage";
      const img = document.createElement("img");
      img.src = item.src;
      img.alt = item.name;
      img.draggable = false;
      img.addEventListener("load", () => layout(overlay));
      stage.appendChild(img);
      const caption = document.createElement("figcaption");
      caption.textContent = item.name;
      pane.append(stage, caption);
      panes.appendChild(pane);
    });
    overlay.kx = { scale: 1, cx: 0.5, cy: 0.5 };
    document.body.appendChild(overlay);
    wire(overlay);
    layout(overlay);
  }

  function closeCompare() {
    document.getElementById("kx-compare")?.remove();
  }

  function fit(stage, img) {
    const w = stage.clientWidth, h = stage.clientHeight;
    const nw = img.naturalWidth || 1, nh = img.naturalHeight || 1;
    const f = Math.min(w / nw, h / nh);
    return { w, h, fw: nw * f, fh: nh * f };
  }

  function layout(overlay) {
    const { scale, cx, cy } = overlay.kx;
    overlay.querySelectorAll(".kx-stage").forEach((stage) => {
      const img = stage.querySelector("img");
      const box = fit(stage, img);
      img.style.width = `${box.fw * scale}px`;
      img.style.height = `${box.fh * scale}px`;
      img.style.left = `${box.w / 2 - cx * box.fw * scale}px`;
      img.style.top = `${box.h / 2 - cy * box.fh * scale}px`;
    });
    overlay.dataset.scale = scale.toFixed(3);
  }

  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

  function zoomAt(overlay, stage, px, py, factor) {
    const state = overlay.kx;
    const box = fit(stage, stage.querySelector("img"));
    const scale = clamp(state.scale * factor, 1, 16);
    // the point of the picture under the pointer stays under the pointer, in every pane
    const u = (px - (box.w / 2 - state.cx * box.fw * state.scale)) / (box.fw * state.scale);
    const v = (py - (box.h / 2 - state.cy * box.fh * state.scale)) / (box.fh * state.scale);
    state.cx = clamp(u - (px - box.w / 2) / (box.fw * scale), 0, 1);
    state.cy = clamp(v - (py - box.h / 2) / (box.fh * scale), 0, 1);
    state.scale = scale;
    if (scale === 1) Object.assign(state, { cx: 0.5, cy: 0.5 });
    layout(overlay);
  }

  function wire(overlay) {
    overlay.addEventListener("click", (event) => {
      const button = event.target.closest("[data-zoom]");
      if (!button) return;
      const how = button.dataset.zoom;
      if (how === "close") return closeCompare();
      const stage = overlay.querySelector(".kx-stage");
      if (how === "fit") Object.assign(overlay.kx, { scale: 1, cx: 0.5, cy: 0.5 });
      else zoomAt(overlay, stage, stage.clientWidth / 2, stage.clientHeight / 2, how === "in" ? 1.5 : 1 / 1.5);
      layout(overlay);
    });
    overlay.querySelectorAll(".kx-stage").forEach((stage) => {
      stage.addEventListener(
        "wheel",
        (event) => {
          event.preventDefault();
          const r = stage.getBoundingClientRect();
          zoomAt(overlay, stage, event.clientX - r.left, event.clientY - r.top, Math.exp(-event.deltaY * 0.0015));
        },
        { passive: false },
      );
      stage.addEventListener("dblclick", () => {
        Object.assign(overlay.kx, { scale: 1, cx: 0.5, cy: 0.5 });
        layout(overlay);
      });
      let last = null;
      stage.addEventListener("pointerdown", (event) => {
        last = { x: event.clientX, y: event.clientY };
        stage.setPointerCapture(event.pointerId);
      });
      stage.addEventListener("pointermove", (event) => {
        if (!last) return;
        const state = overlay.kx;
        const box = fit(stage, stage.querySelector("img"));
        state.cx = clamp(state.cx - (event.clientX - last.x) / (box.fw * state.scale), 0, 1);
        state.cy = clamp(state.cy - (event.clientY - last.y) / (box.fh * state.scale), 0, 1);
        last = { x: event.clientX, y: event.clientY };
        layout(overlay);
      });
      const end = () => (last = null);
      stage.addEventListener("pointerup", end);
      stage.addEventListener("pointercancel", end);
    });
  }

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeCompare();
  });
  window.addEventListener("resize", () => {
    const overlay = document.getElementById("kx-compare");
    if (overlay) layout(overlay);
  });

  // --- hooks the gr.HTML components call from js_on_load -------------------------------------------------

  window.kx = {
    grid(element, trigger, watch) {
      element.addEventListener("click", (event) => {
        if (event.target.closest('[data-action="resume"]')) trigger("select", { action: "resume" });
      });
      watch("value", () => {
        sync(element);
        const tab = element.querySelector(".kx-grid")?.dataset.tab;
        if (tab && pending[tab] && Date.now() - pending[tab] < 15000) {
          delete pending[tab];
          window.kx.show(`${tab}-results`);
        }
      });
      sync(element);
    },
    runs(element, trigger) {
      element.addEventListener("click", (event) => {
        const row = event.target.closest("[data-run]");
        if (!row) return;
        element.querySelectorAll(".kx-run-open").forEach((r) => r.classList.remove("kx-run-open"));
        row.classList.add("kx-run-open");
        trigger("select", { run_id: row.dataset.run });
      });
    },
    show(id) {
      const target = document.getElementById(id);
      if (target) requestAnimationFrame(() => target.scrollIntoView({ behavior: "smooth", block: "start" }));
    },
    toResults(tab) {
      // now (a message shows at once) and again when the grid first fills (the page is long enough then)
      pending[tab] = Date.now();
      window.kx.show(`${tab}-results`);
    },
    toInput() {
      document.getElementById("edit-image")?.scrollIntoView({ behavior: "smooth", block: "center" });
    },
  };
})();
