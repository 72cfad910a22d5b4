// tilefleet report page: draws the data block of this page (and, in the live monitor,
// what the JSON endpoint returns) with no library and no network.
(function () {
  "use strict";
  var STATUS = {
    s: ["succeeded", "#2e9e44"], k: ["skipped", "#7fb8e6"], f: ["failed", "#d03030"],
    p: ["pending", "#c8ccd0"], r: ["running", "#f0a030"]
  };
  var OUTCOME = {
    s: ["succeeded", "#2e9e44"], r: ["retried", "#f0a030"], f: ["failed", "#d03030"],
    l: ["lost", "#808080"], u: ["in flight", "#6a5acd"]
  };
  var MAX_ROWS = 500;
  var data = JSON.parse(document.getElementById("tilefleet-data").textContent);
  var live = JSON.parse(document.getElementById("tilefleet-live").textContent);
  var mapView = null, timeView = null, pinned = null;
  var state = { map: null, timeline: null, index: null };

  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var k in attrs || {}) node.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function decode(text, Type) {
    if (!text) return new Type(0);
    var raw = atob(text), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return new Type(bytes.buffer);
  }
  function fmtS(s) {
    if (s === null || s === undefined || isNaN(s)) return "–";
    if (s > 0 && s < 0.1) return (s * 1000).toFixed(1) + " ms";
    if (s < 90) return s.toFixed(s < 10 ? 2 : 1) + " s";
    if (s < 5400) return (s / 60).toFixed(1) + " min";
    return (s / 3600).toFixed(1) + " h";
  }
  function maxOf(values, empty) {
    var m = -Infinity; for (var i = 0; i < values.length; i++) if (values[i] > m) m = values[i];
    return values.length ? m : empty;
  }
  function minOf(values, empty) {
    var m = Infinity; for (var i = 0; i < values.length; i++) if (values[i] < m) m = values[i];
    return values.length ? m : empty;
  }
  function fmtTime(t) { return t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "–"; }
  function usd(v) { return v === null || v === undefined ? "–" : "$" + Number(v).toFixed(4); }
  function legend(node, table, keys) {
    node.textContent = "";
    keys.forEach(function (k) {
      var s = el("span", {}, table[k][0]); s.style.setProperty("--c", table[k][1]); node.appendChild(s);
    });
  }
  function fillTable(table, head, rows, numeric) {
    table.textContent = "";
    var tr = el("tr");
    head.forEach(function (h) { tr.appendChild(el("th", {}, h)); });
    table.appendChild(tr);
    rows.forEach(function (row) {
      var r = el("tr");
      row.forEach(function (v, i) { r.appendChild(el("td", numeric && numeric[i] ? { "class": "num" } : {}, v)); });
      table.appendChild(r);
    });
  }

  // -- summary -----------------------------------------------------------------------
  function renderSummary(d) {
    var s = d.summary || {};
    var counters = $("counters"); counters.textContent = "";
    var total = s.tasks || 0;
    [["tasks", "#555"], ["succeeded", STATUS.s[1]], ["skipped", STATUS.k[1]], ["failed", STATUS.f[1]],
     ["pending", STATUS.p[1]], ["retried", STATUS.r[1]]].forEach(function (c) {
      if (s[c[0]] === undefined) return;
      var box = el("div", { "class": "counter", "id": "count-" + c[0], "data-value": s[c[0]] });
      box.style.borderLeftColor = c[1];
      box.appendChild(el("span", { "class": "n" }, s[c[0]]));
      var pct = c[0] !== "tasks" && c[0] !== "retried" && total ? " (" + (100 * s[c[0]] / total).toFixed(1) + " %)" : "";
      box.appendChild(el("span", { "class": "k" }, c[0] + pct));
      counters.appendChild(box);
    });
    var bar = $("progress"); bar.textContent = "";
    ["succeeded", "skipped", "failed"].forEach(function (k) {
      var part = el("div"); part.style.width = (total ? 100 * (s[k] || 0) / total : 0) + "%";
      part.style.background = { succeeded: STATUS.s[1], skipped: STATUS.k[1], failed: STATUS.f[1] }[k];
      bar.appendChild(part);
    });
    var est = s.estimate || {}, cost = s.cost_usd || {};
    var rows = [["recipe", s.recipe], ["run", s.run_id || (d.plan ? "(plan: nothing has run)" : "–")]];
    if (s.run_dir) rows.push(["run dir", s.run_dir]);
    if (!d.plan) {
      rows.push(["attempts", s.attempts]);
      var wall = live && d.live && d.live.state === "running" ? d.live.elapsed_s : s.wall_s;
      rows.push(["wall time", fmtS(wall) + (live && d.live && d.live.state === "running" ? " so far" : "") + " (estimated " + fmtS(est.wall_s) + ")" +
        (s.interrupted ? "; the last session was interrupted" : "")]);
      if (s.task_s) rows.push(["task time", "min " + fmtS(s.task_s.min) + ", median " + fmtS(s.task_s.median) +
        ", max " + fmtS(s.task_s.max) + " (estimated " + fmtS(est.task_s) + " from " + (est.task_s_source || "?") + ")"]);
      rows.push(["cost", usd(cost.measured) + " measured, " + usd(cost.estimated) + " estimated"]);
    } else if (est && est.tasks !== undefined) {
      rows.push(["to run", est.tasks + " task(s), " + est.skipped + " done already"]);
      rows.push(["estimate", fmtS(est.wall_s) + " on " + est.workers + " worker(s), ~" + fmtS(est.task_s) +
        " per task (" + est.task_s_source + ")" + (est.cost_usd !== null && est.cost_usd !== undefined ? ", " + usd(est.cost_usd) : "")]);
    }
    if (live && d.live) {
      rows.push(["rate", d.live.rate_per_s ? d.live.rate_per_s.toFixed(2) + " task(s)/s" : "–"]);
      rows.push(["ETA", d.live.eta_s !== null && d.live.eta_s !== undefined ? fmtS(d.live.eta_s) : "–"]);
      rows.push(["cost so far", usd(d.live.cost_usd)]);
    }
    fillTable($("facts"), ["", ""], rows); $("facts").firstChild.remove();
    var ex = s.executor || {}, exRows = [];
    Object.keys(ex).forEach(function (k) {
      var v = ex[k]; exRows.push([k === "name" ? "executor" : k, typeof v === "object" ? JSON.stringify(v) : String(v)]);
    });
    fillTable($("executor"), ["", ""], exRows); $("executor").firstChild.remove();
    fillTable($("sessions"), ["session", "executor", "started", "finished", "wall", "estimated", "interrupted"],
      (d.sessions || []).map(function (x) {
        return [x.id, x.executor, fmtTime(x.started), fmtTime(x.finished),
          x.finished ? fmtS(x.finished - x.started) : "running", fmtS((x.estimate || {}).wall_s), x.interrupted ? "yes" : ""];
      }));
    $("footer").textContent = (d.plan ? "plan map" : "report") + " written " + fmtTime(d.generated) + " by tilefleet";
  }

  // -- the map -----------------------------------------------------------------------
  function prepareMap(m) {
    var shapes = { kind: m.kind, ids: m.ids, status: m.status, reasons: m.reasons || {}, tasks: m.tasks || {} };
    if (m.kind === "tiles") {
      shapes.coords = decode(m.coords, Float32Array);
      shapes.ringStart = decode(m.ring_start, Int32Array);
      shapes.shapeRing = decode(m.shape_ring, Int32Array);
      shapes.extent = m.extent;
      var n = m.ids.length, box = new Float32Array(4 * n);
      for (var s = 0; s < n; s++) {
        var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
        for (var r = shapes.shapeRing[s]; r < shapes.shapeRing[s + 1]; r++) {
          for (var v = shapes.ringStart[r]; v < shapes.ringStart[r + 1]; v++) {
            var x = shapes.coords[2 * v], y = shapes.coords[2 * v + 1];
            if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
          }
        }
        box[4 * s] = x0; box[4 * s + 1] = y0; box[4 * s + 2] = x1; box[4 * s + 3] = y1;
      }
      shapes.box = box;
    }
    return shapes;
  }
  function buildIndex(m) {
    // A grid of buckets over the extent: hover looks at the tiles of one bucket only.
    var e = m.extent, n = m.ids.length, size = Math.max(1, Math.min(512, Math.ceil(Math.sqrt(n / 4))));
    var w = (e[2] - e[0]) || 1e-9, h = (e[3] - e[1]) || 1e-9, buckets = new Map();
    for (var s = 0; s < n; s++) {
      var i0 = Math.floor((m.box[4 * s] - e[0]) / w * size), i1 = Math.floor((m.box[4 * s + 2] - e[0]) / w * size);
      var j0 = Math.floor((m.box[4 * s + 1] - e[1]) / h * size), j1 = Math.floor((m.box[4 * s + 3] - e[1]) / h * size);
      for (var i = Math.max(0, i0); i <= Math.min(size - 1, i1); i++)
        for (var j = Math.max(0, j0); j <= Math.min(size - 1, j1); j++) {
          var key = i * size + j, list = buckets.get(key);
          if (!list) buckets.set(key, list = []);
          list.push(s);
        }
    }
    return { size: size, w: w, h: h, buckets: buckets };
  }
  function fitView(e, canvas) {
    var midLat = (e[1] + e[3]) / 2, k = Math.max(0.1, Math.cos(midLat * Math.PI / 180));
    var w = Math.max((e[2] - e[0]) * k, 1e-6), h = Math.max(e[3] - e[1], 1e-6), pad = 16;
    var scale = Math.min((canvas.width - 2 * pad) / w, (canvas.height - 2 * pad) / h);
    return { k: k, scale: scale, cx: (e[0] + e[2]) / 2, cy: (e[1] + e[3]) / 2, zoom: 1, dx: 0, dy: 0 };
  }
  function project(v, canvas, x, y) {
    var s = v.scale * v.zoom;
    return [canvas.width / 2 + (x - v.cx) * v.k * s + v.dx, canvas.height / 2 - (y - v.cy) * s + v.dy];
  }
  function unproject(v, canvas, px, py) {
    var s = v.scale * v.zoom;
    return [(px - canvas.width / 2 - v.dx) / (v.k * s) + v.cx, -(py - canvas.height / 2 - v.dy) / s + v.cy];
  }
  function drawMap() {
    var m = state.map, canvas = $("map"), ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!m || m.kind !== "tiles") return;
    var n = m.ids.length, stroke = n <= 20000, groups = {};
    for (var s = 0; s < n; s++) (groups[m.status[s]] = groups[m.status[s]] || []).push(s);
    // Paths of a few hundred shapes at a time: a canvas fills one huge path in more than
    // linear time. Shapes wholly outside the view (zoomed in) are left out.
    var W = canvas.width, H = canvas.height;
    Object.keys(groups).forEach(function (code) {
      ctx.fillStyle = STATUS[code][1]; ctx.strokeStyle = "rgba(0,0,0,0.35)"; ctx.lineWidth = 0.6;
      var list = groups[code], inPath = 0;
      ctx.beginPath();
      for (var n = 0; n < list.length; n++) {
        var s = list[n];
        var a = project(mapView, canvas, m.box[4 * s], m.box[4 * s + 3]), b = project(mapView, canvas, m.box[4 * s + 2], m.box[4 * s + 1]);
        if (b[0] < 0 || a[0] > W || b[1] < 0 || a[1] > H) continue;
        for (var r = m.shapeRing[s]; r < m.shapeRing[s + 1]; r++) traceRing(ctx, canvas, m, r);
        if (++inPath === 256) { ctx.fill(); if (stroke) ctx.stroke(); ctx.beginPath(); inPath = 0; }
      }
      if (inPath) { ctx.fill(); if (stroke) ctx.stroke(); }
    });
    if (pinned !== null) outlineShape(ctx, canvas, pinned);
  }
  function traceRing(ctx, canvas, m, r) {
    // A ring of two vertices is a lon/lat box given by two opposite corners.
    var a = m.ringStart[r], b = m.ringStart[r + 1], p;
    if (b - a === 2) {
      var x0 = m.coords[2 * a], y0 = m.coords[2 * a + 1], x1 = m.coords[2 * a + 2], y1 = m.coords[2 * a + 3];
      p = project(mapView, canvas, x0, y0); ctx.moveTo(p[0], p[1]);
      p = project(mapView, canvas, x1, y0); ctx.lineTo(p[0], p[1]);
      p = project(mapView, canvas, x1, y1); ctx.lineTo(p[0], p[1]);
      p = project(mapView, canvas, x0, y1); ctx.lineTo(p[0], p[1]);
    } else {
      for (var v = a; v < b; v++) {
        p = project(mapView, canvas, m.coords[2 * v], m.coords[2 * v + 1]);
        if (v === a) ctx.moveTo(p[0], p[1]); else ctx.lineTo(p[0], p[1]);
      }
    }
    ctx.closePath();
  }
  function outlineShape(ctx, canvas, s) {
    var m = state.map; ctx.beginPath();
    for (var r = m.shapeRing[s]; r < m.shapeRing[s + 1]; r++) traceRing(ctx, canvas, m, r);
    ctx.strokeStyle = "#000"; ctx.lineWidth = 2; ctx.stroke();
  }
  function insideRing(m, r, x, y) {
    var inside = false, a = m.ringStart[r], b = m.ringStart[r + 1];
    if (b - a === 2) return x >= m.coords[2 * a] && x <= m.coords[2 * a + 2] && y >= m.coords[2 * a + 1] && y <= m.coords[2 * a + 3];
    for (var i = a, j = b - 1; i < b; j = i++) {
      var xi = m.coords[2 * i], yi = m.coords[2 * i + 1], xj = m.coords[2 * j], yj = m.coords[2 * j + 1];
      if ((yi > y) !== (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
  }
  function shapeAt(x, y) {
    var m = state.map, ix = state.index, e = m.extent;
    if (!ix) return null;
    var i = Math.floor((x - e[0]) / ix.w * ix.size), j = Math.floor((y - e[1]) / ix.h * ix.size);
    if (i < 0 || j < 0 || i >= ix.size || j >= ix.size) return null;
    var list = ix.buckets.get(i * ix.size + j) || [];
    for (var n = 0; n < list.length; n++) {
      var s = list[n], b = m.box;
      if (x < b[4 * s] || x > b[4 * s + 2] || y < b[4 * s + 1] || y > b[4 * s + 3]) continue;
      for (var r = m.shapeRing[s]; r < m.shapeRing[s + 1]; r++) if (insideRing(m, r, x, y)) return s;
    }
    return null;
  }
  function describeShape(s) {
    var m = state.map, code = m.status[s], text = m.ids[s] + "\n" + STATUS[code][0];
    if (m.tasks[s]) text += "\n" + m.tasks[s].slice(0, 12).join("\n") + (m.tasks[s].length > 12 ? "\n…" : "");
    if (m.reasons[s]) text += "\nreason: " + m.reasons[s];
    return text;
  }
  function showTooltip(s, px, py, pin) {
    var tip = $("tooltip");
    if (s === null) { tip.hidden = true; tip.removeAttribute("data-id"); return; }
    tip.hidden = false; tip.textContent = describeShape(s);
    tip.setAttribute("data-id", state.map.ids[s]);
    tip.className = "tooltip" + (pin ? " pinned" : "");
    tip.style.left = Math.min(px + 14, $("map").clientWidth - 200) + "px"; tip.style.top = (py + 14) + "px";
  }
  function canvasPoint(canvas, event) {
    var rect = canvas.getBoundingClientRect();
    return [(event.clientX - rect.left) * canvas.width / rect.width, (event.clientY - rect.top) * canvas.height / rect.height,
      event.clientX - rect.left, event.clientY - rect.top];
  }
  function setupMapEvents() {
    var canvas = $("map"), drag = null;
    canvas.addEventListener("mousemove", function (ev) {
      var p = canvasPoint(canvas, ev);
      if (drag) { mapView.dx += p[0] - drag[0]; mapView.dy += p[1] - drag[1]; drag = p; drag.moved = true; drawMap(); return; }
      if (pinned !== null || !state.map || state.map.kind !== "tiles") return;
      var ll = unproject(mapView, canvas, p[0], p[1]);
      showTooltip(shapeAt(ll[0], ll[1]), p[2], p[3], false);
    });
    canvas.addEventListener("mouseleave", function () { if (pinned === null) showTooltip(null); drag = null; });
    canvas.addEventListener("mousedown", function (ev) { drag = canvasPoint(canvas, ev); });
    canvas.addEventListener("mouseup", function (ev) {
      var moved = drag && drag.moved; drag = null;
      if (moved || !state.map || state.map.kind !== "tiles") return;
      var p = canvasPoint(canvas, ev), ll = unproject(mapView, canvas, p[0], p[1]), s = shapeAt(ll[0], ll[1]);
      pinned = (s === pinned) ? null : s;
      showTooltip(pinned, p[2], p[3], pinned !== null); drawMap();
    });
    canvas.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      var p = canvasPoint(canvas, ev), f = ev.deltaY < 0 ? 1.25 : 0.8;
      mapView.dx = p[0] - canvas.width / 2 - (p[0] - canvas.width / 2 - mapView.dx) * f;
      mapView.dy = p[1] - canvas.height / 2 - (p[1] - canvas.height / 2 - mapView.dy) * f;
      mapView.zoom *= f; drawMap();
    }, { passive: false });
    canvas.addEventListener("dblclick", function () { mapView.zoom = 1; mapView.dx = mapView.dy = 0; drawMap(); });
  }
  function renderTaskList(m) {
    var list = $("task-list"); list.textContent = ""; list.hidden = false;
    var shown = Math.min(m.ids.length, 5000);
    for (var i = 0; i < shown; i++) {
      var code = m.status[i], item = el("span", { "class": "item", "data-id": m.ids[i], "data-status": STATUS[code][0] }, m.ids[i]);
      item.style.setProperty("--c", STATUS[code][1]);
      if (m.reasons[i] !== undefined) item.title = m.reasons[i];
      list.appendChild(item);
    }
    if (m.ids.length > shown) list.appendChild(el("span", {}, "… and " + (m.ids.length - shown) + " more (see tasks.csv)"));
  }
  function renderMap(d, sameGeometry) {
    var raw = d.map;
    if (!raw) return;
    if (sameGeometry && state.map && state.map.kind === "tiles" && raw.kind === "tiles" && raw.coords === undefined) {
      state.map.status = raw.status; state.map.reasons = raw.reasons || {}; state.map.tasks = raw.tasks || {};
    } else {
      state.map = prepareMap(raw);
      if (state.map.kind === "tiles") {
        state.index = buildIndex(state.map);
        if (!mapView) mapView = fitView(state.map.extent, $("map"));
      }
    }
    var m = state.map, counts = {};
    for (var i = 0; i < m.status.length; i++) counts[m.status[i]] = (counts[m.status[i]] || 0) + 1;
    var keys = Object.keys(STATUS).filter(function (k) { return counts[k] || "skfp".indexOf(k) >= 0; });
    legend($("map-legend"), STATUS, keys);
    if (data.plan) {  // before a run the same colours say what the plan would do
      var words = { s: "succeeded", k: "done already (skipped)", f: "rejected by the plan (failed)", p: "would run (pending)", r: "running" };
      Array.prototype.forEach.call($("map-legend").children, function (node, i) { node.textContent = words[keys[i]]; });
    }
    if (m.kind === "tiles") {
      $("map-title").textContent = "Tiles (" + m.ids.length + ")";
      $("map").hidden = false; $("map-hint").hidden = false; $("task-list").hidden = true;
      drawMap();
    } else {
      $("map-title").textContent = "Tasks (" + m.ids.length + ", no tile footprints: a manifest recipe)";
      $("map").hidden = true; $("map-hint").hidden = true;
      renderTaskList(m);
    }
  }
  // What the map drew, for tests and scripts: one entry per shape (or list item).
  Object.defineProperty(window, "tilefleetMap", {
    get: function () {
      var m = state.map; if (!m) return [];
      var out = [];
      for (var i = 0; i < m.ids.length; i++) {
        var code = m.status[i];
        out.push({ id: m.ids[i], status: STATUS[code][0], colour: STATUS[code][1], reason: m.reasons[i] === undefined ? null : m.reasons[i] });
      }
      return out;
    }
  });
  window.tilefleetShapeAt = function (lon, lat) { var s = shapeAt(lon, lat); return s === null ? null : state.map.ids[s]; };
  window.tilefleetPixelOf = function (id) {
    // Where (in CSS pixels of the map canvas) a tile's centre is drawn.
    var m = state.map, s = m.ids.indexOf(id), canvas = $("map");
    var p = project(mapView, canvas, (m.box[4 * s] + m.box[4 * s + 2]) / 2, (m.box[4 * s + 1] + m.box[4 * s + 3]) / 2);
    var rect = canvas.getBoundingClientRect();
    return [p[0] * rect.width / canvas.width, p[1] * rect.height / canvas.height];
  };

  // -- timeline, throughput, histogram ---------------------------------------------------
  function prepareTimeline(t) {
    return { start: decode(t.start, Float32Array), end: decode(t.end, Float32Array), lane: decode(t.lane, Int32Array),
      outcome: t.outcome, lanes: t.lanes, labels: t.labels, label: t.lane_label, tasks: t.tasks, weight: t.weight || 1 };
  }
  function axisTicks(lo, hi, n) {
    var span = hi - lo || 1, step = Math.pow(10, Math.floor(Math.log10(span / n))), ticks = [];
    [1, 2, 5, 10].some(function (m) { if (span / (step * m) <= n) { step *= m; return true; } return false; });
    for (var v = Math.ceil(lo / step) * step; v <= hi; v += step) ticks.push(v);
    return ticks;
  }
  function drawTimeline() {
    var t = state.timeline, canvas = $("timeline"), ctx = canvas.getContext("2d");
    var left = t && t.labels ? 150 : 60, right = 10, top = 8, bottom = 30;
    var lanes = t ? Math.max(1, t.lanes) : 1;
    canvas.height = Math.min(900, Math.max(160, top + bottom + lanes * (lanes > 60 ? 4 : 18)));
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!t || !t.start.length) { ctx.fillStyle = "#888"; ctx.fillText("no attempts ran", canvas.width / 2 - 40, canvas.height / 2); return; }
    var maxEnd = 0; for (var i = 0; i < t.end.length; i++) if (t.end[i] > maxEnd) maxEnd = t.end[i];
    if (!timeView || timeView.full !== maxEnd) timeView = { lo: timeView && timeView.zoomed ? timeView.lo : 0, hi: timeView && timeView.zoomed ? timeView.hi : maxEnd || 1, full: maxEnd, zoomed: timeView && timeView.zoomed };
    var w = canvas.width - left - right, h = canvas.height - top - bottom, rowH = h / lanes;
    var sx = w / ((timeView.hi - timeView.lo) || 1);
    ctx.save(); ctx.beginPath(); ctx.rect(left, top, w, h); ctx.clip();
    var byOutcome = {};
    for (i = 0; i < t.start.length; i++) {
      var x0 = left + (t.start[i] - timeView.lo) * sx, x1 = left + (t.end[i] - timeView.lo) * sx;
      if (x1 < left || x0 > left + w) continue;
      (byOutcome[t.outcome[i]] = byOutcome[t.outcome[i]] || []).push([x0, top + t.lane[i] * rowH + rowH * 0.15, Math.max(1, x1 - x0), Math.max(1, rowH * 0.7)]);
    }
    Object.keys(byOutcome).forEach(function (code) {
      ctx.fillStyle = OUTCOME[code][1]; ctx.strokeStyle = "rgba(0,0,0,0.55)"; ctx.lineWidth = 0.7;
      byOutcome[code].forEach(function (b) {
        ctx.fillRect(b[0], b[1], b[2], b[3]);
        if (b[2] > 3 && b[3] > 3) ctx.strokeRect(b[0] + 0.35, b[1] + 0.35, b[2] - 0.7, b[3] - 0.7);
      });
    });
    ctx.restore();
    ctx.fillStyle = "#333"; ctx.font = "11px sans-serif"; ctx.strokeStyle = "#999";
    ctx.beginPath(); ctx.moveTo(left, top + h); ctx.lineTo(left + w, top + h); ctx.stroke();
    var ticks = axisTicks(timeView.lo, timeView.hi, 8);
    var decimals = ticks.length > 1 ? Math.max(0, Math.min(6, -Math.floor(Math.log10(ticks[1] - ticks[0]) + 1e-9))) : 2;
    ticks.forEach(function (v) {
      var x = left + (v - timeView.lo) * sx; ctx.fillText(v.toFixed(decimals), x - 6, top + h + 14);
    });
    ctx.fillText("seconds since the first attempt started", left + w / 2 - 100, canvas.height - 3);
    if (t.labels && rowH >= 9) t.labels.forEach(function (l, i) { ctx.fillText(l.length > 22 ? "…" + l.slice(-21) : l, 4, top + i * rowH + rowH / 2 + 4); });
    else { ctx.save(); ctx.translate(12, top + h / 2 + 60); ctx.rotate(-Math.PI / 2); ctx.fillText(t.label, 0, 0); ctx.restore(); }
  }
  function setupTimelineEvents() {
    var canvas = $("timeline"), drag = null;
    canvas.addEventListener("wheel", function (ev) {
      if (!timeView) return; ev.preventDefault();
      var p = canvasPoint(canvas, ev), left = state.timeline && state.timeline.labels ? 150 : 60;
      var w = canvas.width - left - 10, at = timeView.lo + (p[0] - left) / w * (timeView.hi - timeView.lo), f = ev.deltaY < 0 ? 0.8 : 1.25;
      timeView.lo = at - (at - timeView.lo) * f; timeView.hi = at + (timeView.hi - at) * f; timeView.zoomed = true; drawTimeline();
    }, { passive: false });
    canvas.addEventListener("mousedown", function (ev) { drag = canvasPoint(canvas, ev); });
    canvas.addEventListener("mousemove", function (ev) {
      if (!drag || !timeView) return;
      var p = canvasPoint(canvas, ev), span = timeView.hi - timeView.lo, d = (p[0] - drag[0]) / (canvas.width - 70) * span;
      timeView.lo -= d; timeView.hi -= d; timeView.zoomed = true; drag = p; drawTimeline();
    });
    window.addEventListener("mouseup", function () { drag = null; });
    canvas.addEventListener("dblclick", function () { timeView = null; drawTimeline(); });
  }
  function bars(canvas, values, colour, xlabel, ylabel, xfmt) {
    var ctx = canvas.getContext("2d"), left = 46, bottom = 30, top = 10, w = canvas.width - left - 10, h = canvas.height - top - bottom;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    var max = Math.max(1, maxOf(values.counts, 1)), bw = w / Math.max(1, values.counts.length);
    values.counts.forEach(function (c, i) {
      var bh = h * c / max; ctx.fillStyle = colour; ctx.fillRect(left + i * bw, top + h - bh, Math.max(1, bw - 1), bh);
      if (bw > 4) { ctx.strokeStyle = "rgba(0,0,0,0.4)"; ctx.strokeRect(left + i * bw + 0.5, top + h - bh + 0.5, Math.max(0, bw - 2), Math.max(0, bh - 1)); }
    });
    ctx.fillStyle = "#333"; ctx.font = "11px sans-serif";
    ctx.fillText(String(max), 4, top + 10); ctx.fillText("0", 30, top + h);
    ctx.fillText(xfmt(values.lo), left, top + h + 13); ctx.fillText(xfmt(values.hi), left + w - 40, top + h + 13);
    ctx.fillText(xlabel, left + w / 2 - 50, canvas.height - 3);
    ctx.save(); ctx.translate(11, top + h / 2 + 30); ctx.rotate(-Math.PI / 2); ctx.fillText(ylabel, 0, 0); ctx.restore();
  }
  function histogram(values, bins, lo, hi) {
    var counts = new Array(bins).fill(0), span = (hi - lo) || 1;
    for (var i = 0; i < values.length; i++) counts[Math.min(bins - 1, Math.max(0, Math.floor((values[i] - lo) / span * bins)))]++;
    return { counts: counts, lo: lo, hi: hi };
  }
  function renderCharts(d) {
    state.timeline = prepareTimeline(d.timeline || {});
    legend($("timeline-legend"), OUTCOME, Object.keys(OUTCOME));
    drawTimeline();
    var t = state.timeline, ends = [];
    for (var i = 0; i < t.end.length; i++) if (t.outcome[i] !== "u") ends.push(t.end[i]);
    var maxEnd = maxOf(ends, 1);
    var nbins = Math.max(5, Math.min(40, Math.ceil(ends.length / 4)));
    var hist = histogram(ends, nbins, 0, maxEnd), bin = maxEnd / nbins;
    var weight = t.weight || 1;  // a sampled timeline: each drawn attempt stands for so many
    hist.counts = hist.counts.map(function (c) { return bin > 0 ? c * weight / bin : c * weight; }).map(function (v) { return Math.round(v * 100) / 100; });
    bars($("throughput"), hist, "#3b7dd8", "seconds since the first attempt started", "attempts/s", fmtS);
    var durations = decode(d.durations, Float32Array);
    var dmin = minOf(durations, 0), dmax = maxOf(durations, 1);
    if (dmax - dmin < 1e-3) { dmin = Math.max(0, dmin - 0.1 * dmin - 1e-3); dmax = dmax + 0.1 * dmax + 1e-3; }
    bars($("histogram"), histogram(durations, 30, dmin, dmax), "#2e9e44", "task duration", "tasks", function (v) { return fmtS(v); });
  }

  // -- tables ----------------------------------------------------------------------------
  function renderFailures(d) {
    var rows = d.failures || [], query = $("failure-filter").value.toLowerCase();
    var matching = rows.filter(function (r) { return !query || (r[0] + " " + r[2]).toLowerCase().indexOf(query) >= 0; });
    var total = d.failures_total || rows.length, unlisted = total - rows.length;
    $("failure-count").textContent = "(" + total + (query ? ", " + matching.length + " matching" + (unlisted > 0 ? " of the first " + rows.length : "") : "") + ")";
    fillTable($("failures"), ["task", "attempts", "reason"], matching.slice(0, MAX_ROWS), [false, true, false]);
    Array.prototype.forEach.call($("failures").querySelectorAll("tr"), function (tr, i) {
      if (i > 0) tr.setAttribute("data-id", matching[i - 1][0]);
    });
    var more = Math.max(0, matching.length - MAX_ROWS) + (query ? 0 : Math.max(0, unlisted));
    if (more > 0) $("failures").appendChild(el("tr", {}, "… " + more + " more in failed.csv"));
  }
  function renderWarnings(d) {
    var rows = d.warnings || [];
    $("warning-count").textContent = "(" + rows.length + ")";
    fillTable($("warnings"), ["task", "warning"], rows.slice(0, MAX_ROWS).map(function (w) { return [w.task, w.warning]; }));
  }
  function renderBreakdown(d) {
    var b = d.breakdown;
    $("breakdown-section").hidden = !b;
    if (!b) return;
    $("breakdown-title").textContent = "Per " + b.param;
    fillTable($("breakdown"), [b.param, "tasks", "succeeded", "skipped", "failed", "pending", "median time"],
      b.rows.map(function (r) { return [r.value, r.tasks, r.succeeded, r.skipped, r.failed, r.pending, fmtS(r.median_s)]; }),
      [false, true, true, true, true, true, true]);
  }

  // Per kind of task (report.json's by_kind, for recipes whose tasks differ: TTC products):
  // counts, the median time and the cost, estimated before the run and measured.
  function renderKinds(d) {
    var kinds = (d.summary || {}).by_kind || {}, names = Object.keys(kinds);
    $("kinds-section").hidden = !names.length;
    if (!names.length) return;
    fillTable($("kinds"), ["kind", "tasks", "succeeded", "skipped", "failed", "median time", "estimated cost", "measured cost"],
      names.map(function (k) {
        var p = kinds[k], cost = p.cost_usd || {};
        return [k, p.tasks, p.succeeded, p.skipped, p.failed, fmtS((p.task_s || {}).median), usd(cost.estimated), usd(cost.measured)];
      }),
      [false, true, true, true, true, true, true, true]);
  }

  // What a large run's page draws of it (a sample), said next to each part.
  function renderNotes(d) {
    var notes = d.notes || {};
    [["map", "map-note"], ["timeline", "timeline-note"], ["durations", "durations-note"]].forEach(function (p) {
      $(p[1]).hidden = !notes[p[0]];
      $(p[1]).textContent = notes[p[0]] || "";
    });
  }

  function render(d, sameGeometry) {
    data = d;
    renderNotes(d);
    $("timeline-section").hidden = !!d.plan;  // a plan has run nothing yet
    $("sessions").hidden = $("sessions").previousElementSibling.hidden = !!d.plan;
    renderSummary(d);
    renderMap(d, sameGeometry);
    renderCharts(d);
    renderBreakdown(d);
    renderKinds(d);
    renderFailures(d);
    renderWarnings(d);
    document.body.setAttribute("data-rendered", String(d.generated));
  }
  $("failure-filter").addEventListener("input", function () { renderFailures(data); });
  setupMapEvents();
  setupTimelineEvents();
  render(data, false);

  // -- live: poll the monitor's JSON endpoint --------------------------------------------------
  function showLiveState(d, lost) {
    var badge = $("live-state"), st = lost ? "lost" : (d.live ? d.live.state : "");
    badge.hidden = false;
    badge.textContent = lost ? "monitor stopped: the last state is shown (report.html in the run dir)"
      : st === "finished" ? "run finished: final report" : st;
    badge.className = "live-state" + (st === "finished" ? " finished" : st === "lost" ? " lost" : "");
    document.body.setAttribute("data-live-state", st);
  }
  if (live) {
    var poll = function () {
      var known = state.map && state.map.kind === "tiles" ? state.map.ids.length : -1;
      fetch(live.endpoint + "?known_shapes=" + known, { cache: "no-store" }).then(function (r) { return r.json(); })
        .then(function (d) {
          render(d, true);
          showLiveState(d, false);
          setTimeout(poll, d.live && d.live.state === "finished" ? live.interval_ms * 5 : live.interval_ms);
        })
        .catch(function () { showLiveState(data, true); setTimeout(poll, live.interval_ms * 5); });
    };
    showLiveState(data, false);
    setTimeout(poll, live.interval_ms);
  }
})();
