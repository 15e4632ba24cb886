// heapgate's profile report. Everything from the profiles arrives as JSON in #heapgate-data and
// is put on the page with textContent, DOM properties and SVG attributes only: never as markup.
(function () {
  function signed(n) { return (n > 0 ? "+" : "") + bytes(n); }
  function place(f) {
    if (!f.url) return "";
    if (!f.line) return f.url;
    return f.url + ":" + f.line + (f.column ? ":" + f.column : "");
  }
  function frameText(f) { const p = place(f); return p ? f.function + " " + p : f.function; }

  // ---- the icicle graph ----
  const box = document.getElementById("icicle");
  const ROW = 20;
  let zoomed = D.graph;
  function depth(n) { let d = 0; for (const c of n.c) d = Math.max(d, depth(c)); return d + 1; }
  function draw() {
    while (box.firstChild) box.removeChild(box.firstChild);
    const W = Math.max(box.clientWidth || 1000, 300);
    const rows = Math.min(depth(zoomed), 200);
    const s = svg("svg", { viewBox: "0 0 " + W + " " + rows * ROW, height: rows * ROW,
      role: "img", "aria-label": isDiff ? "growth by call path" : "live bytes by call path" });
    function put(n, x, d, w) {
      if (w < 0.5 || d >= rows) return;
      const g = svg("g", {});
      const cls = d === 0 ? "top" : (isDiff ? "grow" : "live");
      const r = svg("rect", { x: x, y: d * ROW, width: Math.max(w, 0.5), height: ROW - 1, class: cls });
      const t = svg("title", {});
      const lives = n.b.map(function (b, i) { return D.labels[i] + " " + group.format(b); }).join(", ");
      t.textContent = frameText(n.f) + "\n" + (isDiff ? "growth " + signed(n.v) + " (" + group.format(n.v) + " bytes)\nlive: " + lives : group.format(n.v) + " bytes live");
      r.appendChild(t);
      g.appendChild(r);
      if (w > 40) {
        const label = svg("text", { x: x + 4, y: d * ROW + 14 });
        const full = frameText(n.f) + " (" + (isDiff ? signed(n.v) : bytes(n.v)) + ")";
        const fit = Math.floor((w - 8) / 7);
        label.textContent = full.length > fit ? full.slice(0, Math.max(fit - 1, 0)) + "…" : full;
        g.appendChild(label);
      }
      g.addEventListener("click", function (e) {
        e.stopPropagation();
        zoomed = (n === zoomed) ? D.graph : n;
        draw();
      });
      s.appendChild(g);
      let cx = x;
      for (const c of n.c) {
        const cw = w * c.v / Math.max(n.v, 1);
        put(c, cx, d + 1, cw);
        cx += cw;
      }
    }
    if (zoomed.v > 0) put(zoomed, 0, 0, W);
    else box.appendChild(el("p", "note", isDiff ? "No allocation site grew." : "The profile holds no live samples."));
    if (zoomed.v > 0) box.appendChild(s);
  }
  draw();
  window.addEventListener("resize", draw);

  // ---- allocation sites ----
  const table = document.getElementById("sites");
  const head = el("tr");
  const cols = isDiff
    ? [D.labels.length === 3 ? "Kept Bytes" : "Bytes Delta", D.labels.length === 3 ? "Kept Objects" : "Objects Delta"]
        .concat(D.labels.map(function (l) { return "Live " + l; })).concat(["Allocation site"])
    : ["Live Bytes", "Share", "Objects", "Allocation site"];
  for (const c of cols) { const th = el("th", null, c); th.scope = "col"; head.appendChild(th); }
  const thead = el("thead"); thead.appendChild(head); table.appendChild(thead);
  const tbody = el("tbody");
  function num(text, title) { const td = el("td", "num", text); if (title) td.title = title; return td; }
  for (const s of D.sites) {
    const tr = el("tr");
    if (isDiff) {
      if (s.growth_bytes > 0) tr.className = "leak";
      tr.appendChild(num(signed(s.growth_bytes), group.format(s.growth_bytes) + " bytes"));
      tr.appendChild(num((s.growth_objects > 0 ? "+" : "") + group.format(s.growth_objects)));
      for (const b of s.bytes) tr.appendChild(num(bytes(b), group.format(b) + " bytes"));
    } else {
      tr.appendChild(num(bytes(s.bytes), group.format(s.bytes) + " bytes"));
      tr.appendChild(num((100 * s.bytes / Math.max(D.total_bytes[0], 1)).toFixed(1) + "%"));
      tr.appendChild(num(group.format(s.objects)));
    }
    const name = el("td", "name");
    name.appendChild(el("span", null, s.frame.function + " "));
    name.appendChild(el("span", "loc", place(s.frame)));
    tr.appendChild(name);
    tbody.appendChild(tr);
  }
  table.appendChild(tbody);
  document.getElementById("shown").textContent = D.sites.length < D.sites_total
    ? "The " + D.sites.length + " first of " + D.sites_total + " sites." : D.sites_total + " sites.";

  // ---- stacks of the growing sites ----
  const stacks = document.getElementById("stacks");
  if (stacks) {
    for (const s of D.sites.slice(0, 5)) {
      if (s.growth_bytes <= 0) continue;
      const div = el("div", "stack");
      div.appendChild(el("strong", null, signed(s.growth_bytes) + " " + frameText(s.frame)));
      const ol = el("ol");
      for (const f of s.stack.slice().reverse().slice(1)) ol.appendChild(el("li", "mono", "← " + frameText(f)));
      div.appendChild(ol);
      stacks.appendChild(div);
    }
  }
})();
