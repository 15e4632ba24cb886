// heapgate's report page. Everything from the snapshots arrives as JSON in #heapgate-data and is
// put on the page with textContent and DOM properties only: never parsed as markup.
(function () {
  function signed(s, n) { return n > 0 ? "+" + s : s; }
  function where(c) {
    if (!c.location) return "";
    const l = c.location;
    return c.script ? c.script + ":" + (l.line + 1) + ":" + (l.column + 1)
      : "script " + l.script_id + ", " + (l.line + 1) + ":" + (l.column + 1);
  }

  // ---- columns ----
  const rows = isDiff ? D.rows : D.classes;
  const cols = isDiff ? [
    ["name", "Class"], ["new_count", "# New"], ["deleted_count", "# Deleted"],
    ["delta_count", "# Delta", "signed"], ["alloc_size", "Alloc. Size", "bytes"],
    ["freed_size", "Freed Size", "bytes"], ["size_delta", "Size Delta", "sbytes"],
    ["retained_size", "Retained Size", "bytes"], ["retained_size_delta", "Retained Delta", "sbytes"],
  ].concat(D.three ? [["kept_count", "# Kept"], ["kept_retained_size", "Kept Retained", "bytes"]]
    : [["new_retained_size", "New Retained", "bytes"]])
    : [["name", "Class"], ["count", "Count"], ["self_size", "Shallow Size", "bytes"],
      ["retained_size", "Retained Size", "bytes"]];
  function cell(kind, v) {
    if (v === undefined || v === null) return ["", ""];
    if (kind === "bytes") return [bytes(v), group.format(v) + " bytes"];
    if (kind === "sbytes") return [signed(bytes(v), v), signed(group.format(v), v) + " bytes"];
    if (kind === "signed") return [signed(group.format(v), v), ""];
    return [group.format(v), ""];
  }

  // ---- the table ----
  const table = document.getElementById("rows");
  const thead = el("thead"), tbody = el("tbody"), tfoot = el("tfoot");
  const hr = el("tr");
  const heads = cols.map(function (c, i) {
    const th = el("th");
    th.scope = "col";
    const b = el("button", null, c[1]);
    b.type = "button";
    b.dataset.key = c[0];
    b.addEventListener("click", function () { sortBy(i); });
    th.appendChild(b);
    hr.appendChild(th);
    return th;
  });
  thead.appendChild(hr);
  // Leaking: a top class (one whose holders the report shows) that grew by at least a tenth of
  // the most any top class grew (by what its kept objects retain, or with two files its new
  // objects). Churn such as compiled code stays unmarked.
  function growth(r) { return D.three ? (r.kept_retained_size || 0) : (r.new_retained_size || 0); }
  function explained(r) { return isDiff && r.retainers && r.retainers.length > 0; }
  const most = rows.filter(explained).reduce(function (m, r) { return Math.max(m, growth(r)); }, 0);
  // V8's own classes (strings, numbers, compiled code: names in parentheses) are what other
  // objects hold; they are marked only when nothing else explains the growth.
  const anyCode = rows.some(function (r) { return explained(r) && r.name.charAt(0) !== "("; });
  function leaking(r) {
    return explained(r) && growth(r) > 0 && growth(r) * 10 >= most && !(anyCode && r.name.charAt(0) === "(");
  }
  // Rows are built when first shown: a page of thousands of classes renders its first rows only.
  const trs = new Array(rows.length);
  function rowEl(index) {
    if (trs[index]) return trs[index];
    const r = rows[index];
    const tr = el("tr");
    tr.dataset.index = index;
    if (leaking(r)) tr.className = "leak";
    cols.forEach(function (c) {
      if (c[0] === "name") {
        const td = el("td", "name");
        if (leaking(r)) {
          const badge = el("span", "badge", "leak");
          badge.title = D.three ? "its objects new in B and still alive in C retain " + bytes(growth(r))
            : "its retained size grew by " + bytes(growth(r));
          td.appendChild(badge);
        }
        if (D.fail_on_growth !== null && isDiff) {
          const growth = D.three ? (r.kept_retained_size || 0) : r.retained_size_delta;
          if (growth > D.fail_on_growth) {
            const over = el("span", "badge", "over limit");
            over.title = "grew more than --fail-on-growth " + group.format(D.fail_on_growth) + " bytes";
            td.appendChild(over);
          }
        }
        let name;
        if (explained(r)) {
          name = el("a", "cls", r.name);
          name.href = "#holders-" + index;
        } else {
          name = el("span", "cls", r.name);
        }
        td.appendChild(name);
        const w = where(r);
        if (w) td.appendChild(el("span", "loc", " (" + w + ")"));
        tr.appendChild(td);
      } else {
        const v = cell(c[2], r[c[0]]);
        const td = el("td", "num", v[0]);
        if (v[1]) td.title = v[1];
        if ((c[2] === "sbytes" || c[2] === "signed") && r[c[0]] > 0) td.classList.add("pos");
        tr.appendChild(td);
      }
    });
    trs[index] = tr;
    return tr;
  }
  if (isDiff) {
    const t = D.totals, fr = el("tr");
    cols.forEach(function (c) {
      if (c[0] === "name") {
        fr.appendChild(el("td", null, "Total (" + group.format(D.rows_total) + " classes)"));
        return;
      }
      let v = t[c[0]];
      if (c[0] === "kept_count") v = D.kept_total;
      const txt = cell(c[2], v);
      const td = el("td", "num", txt[0]);
      if (txt[1]) td.title = txt[1];
      fr.appendChild(td);
    });
    tfoot.appendChild(fr);
  }
  table.appendChild(thead);
  table.appendChild(tbody);
  table.appendChild(tfoot);

  // The order the rows came in is the report's (ties broken as the text report does).
  // The order the rows came in is the report's (ties broken as the text report does).
  let sortCol = cols.findIndex(function (c) { return c[0] === D.sort_key; }), sortDir = -1;
  if (sortCol >= 0) heads[sortCol].setAttribute("aria-sort", "descending");
  let order = rows.map(function (r, j) { return j; });
  function sortBy(i) {
    sortDir = sortCol === i ? -sortDir : (cols[i][0] === "name" ? 1 : -1);
    sortCol = i;
    const key = cols[i][0];
    order.sort(function (a, b) {
      const x = rows[a][key], y = rows[b][key];
      let d;
      if (key === "name") d = x < y ? -1 : x > y ? 1 : 0;
      else d = (x || 0) - (y || 0);
      return d * sortDir || a - b;
    });
    heads.forEach(function (th, j) {
      if (j === i) th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    });
    show();
  }

  // Filtering and sorting work on every row; the first PAGE matches are shown until "show all".
  const PAGE = 200;
  let limit = PAGE;
  const filter = document.getElementById("filter");
  const shown = document.getElementById("shown");
  const more = document.getElementById("more");
  function show() {
    const q = filter.value.trim().toLowerCase();
    const hits = q ? order.filter(function (j) {
      return (rows[j].name + " " + where(rows[j])).toLowerCase().indexOf(q) >= 0;
    }) : order;
    const list = hits.slice(0, limit);
    tbody.replaceChildren.apply(tbody, list.map(rowEl));
    shown.textContent = "showing " + group.format(list.length) + " of " + group.format(hits.length) +
      (q ? " matching" : "") + " classes" +
      (D.rows_total > rows.length ? " (" + group.format(D.rows_total - rows.length) +
        " smaller classes left out of this page; heapgate --json lists all)" : "");
    more.hidden = hits.length <= limit;
    more.textContent = "show all " + group.format(hits.length);
  }
  filter.addEventListener("input", show);
  more.addEventListener("click", function () { limit = Infinity; show(); });
  show();

  // ---- the growth chart ----
  function lineChart(title, points, fmt) {
    const box = el("figure", "chart");
    box.appendChild(el("h3", null, title));
    const W = 360, H = 210, L = 66, R = 14, T = 10, B = 28;
    const s = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
    s.setAttribute("aria-label", title);
    const n = D.growth.labels.length;
    let max = 0;
    points.forEach(function (p) { p.forEach(function (v) { if (v > max) max = v; }); });
    if (max === 0) max = 1;
    const x = function (i) { return L + (n === 1 ? (W - L - R) / 2 : i * (W - L - R) / (n - 1)); };
    const y = function (v) { return T + (H - T - B) * (1 - v / max); };
    for (let k = 0; k <= 4; k++) {
      const v = max * k / 4;
      s.appendChild(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
      const t = svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" });
      t.textContent = fmt(v);
      s.appendChild(t);
    }
    D.growth.labels.forEach(function (label, i) {
      const t = svg("text", { x: x(i), y: H - 8, "text-anchor": "middle" });
      t.textContent = label;
      s.appendChild(t);
    });
    points.forEach(function (p, c) {
      const d = p.map(function (v, i) { return (i ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1); }).join(" ");
      s.appendChild(svg("path", { d: d, class: "line c" + (c % 6) }));
      p.forEach(function (v, i) {
        const dot = svg("circle", { cx: x(i), cy: y(v), r: 3, class: "c" + (c % 6) });
        const tip = svg("title", {});
        tip.textContent = D.growth.classes[c].name + ": " + fmt(v) + " in " + D.growth.labels[i];
        dot.appendChild(tip);
        s.appendChild(dot);
      });
    });
    box.appendChild(s);
    return box;
  }
  const charts = document.getElementById("charts");
  if (charts && D.growth && D.growth.classes.length) {
    const gc = D.growth.classes;
    if (D.growth.labels.length > 1) {
      charts.appendChild(lineChart("Retained size per snapshot",
        gc.map(function (c) { return c.points.map(function (p) { return p.retained_size; }); }), bytes));
      charts.appendChild(lineChart("Objects per snapshot",
        gc.map(function (c) { return c.points.map(function (p) { return p.count; }); }),
        function (v) { return group.format(Math.round(v)); }));
    } else {
      // One snapshot: the top classes' retained sizes as bars.
      const box = el("figure", "chart");
      box.appendChild(el("h3", null, "Retained size of the top classes"));
      const W = 420, rowH = 22, H = gc.length * rowH + 8;
      const s = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
      s.setAttribute("aria-label", "Retained size of the top classes");
      const max = Math.max.apply(null, gc.map(function (c) { return c.points[0].retained_size; }).concat([1]));
      gc.forEach(function (c, i) {
        const w = Math.max(1, (W - 90) * c.points[0].retained_size / max);
        s.appendChild(svg("rect", { x: 0, y: 4 + i * rowH, width: w, height: rowH - 6, class: "bar c" + (i % 6) }));
        const t = svg("text", { x: w + 6, y: 4 + i * rowH + 12 });
        t.textContent = bytes(c.points[0].retained_size);
        s.appendChild(t);
      });
      box.appendChild(s);
      charts.appendChild(box);
    }
    const legend = el("ul", "legend");
    gc.forEach(function (c, i) {
      const li = el("li");
      li.appendChild(el("span", "swatch c" + (i % 6)));
      const w = where(c);
      li.appendChild(el("span", null, c.name + (w ? " (" + w + ")" : "")));
      legend.appendChild(li);
    });
    charts.appendChild(legend);
  }

  // ---- who holds it: an ARIA tree ----
  const tree = document.getElementById("holders");
  let items = [];
  function treeitem(parent, level, labelNodes, expandable) {
    const li = el("li");
    li.setAttribute("role", "treeitem");
    li.setAttribute("aria-level", level);
    li.tabIndex = -1;
    const label = el("span", "label");
    labelNodes.forEach(function (n) { label.appendChild(n); });
    li.appendChild(label);
    if (expandable) {
      li.setAttribute("aria-expanded", "false");
      const ul = el("ul");
      ul.setAttribute("role", "group");
      li.appendChild(ul);
    }
    parent.appendChild(li);
    return li;
  }
  function kids(li) { return li.querySelector(":scope > ul"); }
  function nodeLabel(s) {
    const out = [el("span", "cls", s.node)];
    if (s.name) out.push(document.createTextNode(" " + s.name));
    if (s.location) out.push(el("span", "loc", " (" + s.location + ")"));
    return out;
  }
  if (tree) {
    const suspects = isDiff ? rows.filter(function (r) { return r.retainers && r.retainers.length; }) : [];
    if (!suspects.length) {
      tree.replaceWith(el("p", "note", isDiff ? "No retainer paths in this report (--retainers 0, or no new objects in the top classes)." : "Retainer paths need two or three snapshots: heapgate diff A B [C] --html."));
    }
    suspects.forEach(function (r) {
      const index = rows.indexOf(r);
      const what = D.three ? group.format(r.kept_count) + " kept" : group.format(r.new_count) + " new";
      const w = where(r);
      const cls = treeitem(tree, 1, [el("span", "cls", r.name)].concat(w ? [el("span", "loc", " (" + w + ")")] : [])
        .concat([document.createTextNode(" — " + what + " objects, class retains " + bytes(r.retained_size))]), true);
      cls.id = "holders-" + index;
      r.retainers.forEach(function (g) {
        // The holder line heapgate worked out (the same as the text report's): variable or
        // property, where its owner's code is, the package on the way, the collection.
        const text = [document.createTextNode(group.format(g.count) + " objects, " + bytes(g.retained_size) + " retained")];
        const h = g.holder;
        if (h) {
          text.push(document.createTextNode(" \u2014 held by " + h.kind + " "));
          text.push(el("code", "edge holder", h.name));
          if (h.location) text.push(el("span", "loc", " (" + h.location + ")"));
          if (h.package) text.push(document.createTextNode(" \u2192 " + h.package + (h.via ? " " + h.via : "")));
          if (h.collection) text.push(document.createTextNode(" \u2192 " + h.collection + (h.keys ? ", " + group.format(h.keys) + " keys" : "")));
        }
        const gi = treeitem(kids(cls), 2, text, true);
        // The chain from the object up to a root, as DevTools' Retainers pane lists it.
        const p = g.path;
        treeitem(kids(gi), 3, nodeLabel(p[p.length - 1]), false).classList.add("obj");
        for (let i = p.length - 1; i > 0; i--) {
          const parts = [document.createTextNode("\u2191 "), el("code", "edge", p[i].edge),
            el("span", "kind", " (" + p[i].edge_type + ") "), document.createTextNode("in ")].concat(nodeLabel(p[i - 1]));
          treeitem(kids(gi), 3, parts, false).classList.add("step");
        }
      });
    });
    items = Array.prototype.slice.call(tree.querySelectorAll("[role=treeitem]"));
    if (items.length) items[0].tabIndex = 0;
  }
  function visible() {
    return items.filter(function (li) {
      for (let p = li.parentElement; p && p !== tree; p = p.parentElement) {
        if (p.getAttribute("aria-expanded") === "false") return false;
      }
      return true;
    });
  }
  function focus(li) {
    items.forEach(function (x) { x.tabIndex = -1; x.classList.remove("selected"); });
    li.tabIndex = 0;
    li.classList.add("selected");
    li.focus();
  }
  function toggle(li, open) {
    if (!li.hasAttribute("aria-expanded")) return;
    li.setAttribute("aria-expanded", open === undefined ? String(li.getAttribute("aria-expanded") !== "true") : String(open));
  }
  if (tree) {
    tree.addEventListener("click", function (e) {
      const label = e.target.closest(".label");
      if (!label || !tree.contains(label)) return;
      const li = label.parentElement;
      toggle(li);
      focus(li);
    });
    tree.addEventListener("keydown", function (e) {
      const li = e.target.closest("[role=treeitem]");
      if (!li) return;
      const vis = visible(), i = vis.indexOf(li);
      const open = li.getAttribute("aria-expanded");
      let handled = true;
      switch (e.key) {
        case "ArrowDown": if (i + 1 < vis.length) focus(vis[i + 1]); break;
        case "ArrowUp": if (i > 0) focus(vis[i - 1]); break;
        case "Home": focus(vis[0]); break;
        case "End": focus(vis[vis.length - 1]); break;
        case "ArrowRight":
          if (open === "false") toggle(li, true);
          else if (open === "true") focus(kids(li).querySelector("[role=treeitem]"));
          break;
        case "ArrowLeft":
          if (open === "true") toggle(li, false);
          else { const up = li.parentElement.closest("[role=treeitem]"); if (up) focus(up); }
          break;
        case "Enter": case " ": toggle(li); break;
        default: handled = false;
      }
      if (handled) e.preventDefault();
    });
    // A class link in the table opens that class's tree (and the browser scrolls to it).
    tbody.addEventListener("click", function (e) {
      const a = e.target.closest("a.cls");
      if (a) openId(a.hash.slice(1));
    });
    window.addEventListener("hashchange", function () { openId(location.hash.slice(1)); });
    openId(location.hash.slice(1));
  }
  function openId(id) {
    const li = id && document.getElementById(decodeURIComponent(id));
    if (li && tree.contains(li)) { toggle(li, true); focus(li); }
  }
  // Time from navigation start to a laid-out page (reading offsetHeight forces layout).
  void document.body.offsetHeight;
  document.body.dataset.renderMs = performance.now().toFixed(1);
})();
