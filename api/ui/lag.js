// The lag page: polls /ui/lag/data once a second and draws each region's
// lag in seconds as an SVG line chart, with the current figures beside it.
// No libraries: the page must work on a machine without internet.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
  const H = 360, M = { left: 52, right: 18, top: 14, bottom: 28 };
  let windowSecs = 300;
  let last = null;
  let timer = null;

  const $ = (id) => document.getElementById(id);
  const colors = {};
  function color(region, i) {
    if (!colors[region]) colors[region] = COLORS[i % COLORS.length];
    return colors[region];
  }

  function el(tag, attrs, text) {
    const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmtLag(s) {
    if (s >= 100) return s.toFixed(0);
    if (s >= 10) return s.toFixed(1);
    return s.toFixed(2);
  }

  // niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten.
  function niceCeil(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function fmtAgo(secs) {
    if (secs <= 0) return "now";
    const m = Math.floor(secs / 60), s = Math.round(secs % 60);
    return "−" + m + ":" + String(s).padStart(2, "0");
  }

  function drawChart(d) {
    const svg = $("chart");
    const W = Math.max(320, Math.round(svg.clientWidth || 800));
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.replaceChildren();
    const pw = W - M.left - M.right, ph = H - M.top - M.bottom;
    const t1 = d.now, t0 = d.now - d.windowSeconds * 1000;
    let maxSeen = 0;
    for (const p of d.samples) for (const v of p.lagSeconds) if (v !== null && v > maxSeen) maxSeen = v;
    const thr = d.maxLagSeconds || 0;
    let top = Math.max(1, maxSeen * 1.15);
    if (thr > 0 && maxSeen >= thr * 0.5) top = Math.max(top, thr * 1.1);
    const yMax = niceCeil(top);
    const x = (t) => M.left + ((t - t0) / (t1 - t0)) * pw;
    const y = (v) => M.top + ph - (v / yMax) * ph;

    // Grid and axes.
    const g = el("svg:g", { class: "axes" });
    const step = yMax / 5;
    for (let i = 0; i <= 5; i++) {
      const v = i * step, yy = y(v);
      g.append(el("svg:line", { class: "grid", x1: M.left, x2: W - M.right, y1: yy, y2: yy }));
      g.append(el("svg:text", { class: "axis", x: M.left - 6, y: yy + 4, "text-anchor": "end" }, (Math.round(v * 100) / 100) + " s"));
    }
    const xStep = d.windowSeconds <= 60 ? 10 : 60;
    for (let s = 0; s <= d.windowSeconds; s += xStep) {
      const xx = x(t1 - s * 1000);
      g.append(el("svg:line", { class: "grid", x1: xx, x2: xx, y1: M.top, y2: M.top + ph }));
      g.append(el("svg:text", { class: "axis", x: xx, y: H - 8, "text-anchor": s === 0 ? "end" : "middle" }, fmtAgo(s)));
    }
    svg.append(g);

    if (thr > 0 && thr <= yMax) {
      svg.append(el("svg:line", { class: "threshold", x1: M.left, x2: W - M.right, y1: y(thr), y2: y(thr) }));
      svg.append(el("svg:text", { class: "threshold-label", x: M.left + 6, y: y(thr) - 5, "text-anchor": "start" },
        "not ready past " + thr + " s"));
    }

    if (d.samples.length === 0) {
      svg.append(el("svg:text", { class: "empty", x: M.left + pw / 2, y: M.top + ph / 2, "text-anchor": "middle" }, "no samples yet"));
      return;
    }
    d.regions.forEach((region, i) => {
      let path = "", pen = false, n = 0, lastPt = null;
      for (const p of d.samples) {
        const v = p.lagSeconds[i];
        if (v === null || v === undefined || p.t < t0) { pen = false; continue; }
        const px = x(p.t).toFixed(1), py = y(Math.min(v, yMax)).toFixed(1);
        path += (pen ? "L" : "M") + px + "," + py;
        pen = true; n++; lastPt = [px, py, v];
      }
      if (n === 0) return;
      const line = el("svg:path", { class: "series", "data-region": region, "data-points": n, d: path, stroke: color(region, i) });
      line.append(el("svg:title", {}, region));
      svg.append(line);
      const dot = el("svg:circle", { class: "last", "data-region": region, cx: lastPt[0], cy: lastPt[1], r: 3.5, fill: color(region, i) });
      dot.append(el("svg:title", {}, region + ": " + fmtLag(lastPt[2]) + " s"));
      svg.append(dot);
    });
  }

  function drawLegend(d) {
    $("legend").replaceChildren(...d.regions.map((r, i) => {
      const s = el("span", { class: "item" });
      const sw = el("span", { class: "swatch" });
      sw.style.background = color(r, i); // CSSOM: the CSP forbids style attributes
      s.append(sw, document.createTextNode(r));
      return s;
    }));
  }

  function field(region, name, value) {
    return el("span", { "data-region": region, "data-field": name }, value);
  }

  function drawCards(d) {
    const cards = d.current.map((c) => {
      const i = d.regions.indexOf(c.region);
      const card = el("div", { class: "card", "data-region": c.region, "data-healthy": String(c.healthy) });
      card.style.borderLeftColor = color(c.region, i);
      const top = el("div", { class: "top" });
      top.append(el("span", { class: "name" }, c.region),
        el("span", { class: "badge" + (c.healthy ? "" : " bad"), "data-field": "state" }, c.healthy ? "ready" : "not ready"));
      const big = el("div");
      const lag = field(c.region, "lagSeconds", fmtLag(c.lagSeconds));
      lag.classList.add("lag");
      big.append(lag, el("span", { class: "unit" }, "s behind"));
      const det = el("div", { class: "detail" });
      det.append(field(c.region, "lagEvents", String(c.lagEvents)), document.createTextNode(" events behind · applied "),
        field(c.region, "appliedToken", c.appliedToken), document.createTextNode(" of "), field(c.region, "headToken", c.headToken || "?"));
      card.append(top, big, det);
      return card;
    });
    $("regions").replaceChildren(...cards);
    $("threshold-note").textContent = d.maxLagSeconds > 0
      ? "A region more than " + d.maxLagSeconds + " s behind is marked not ready."
      : "No lag threshold is set: regions are marked not ready only when their replica fails.";
  }

  function render(d) {
    last = d;
    drawChart(d);
    drawLegend(d);
    drawCards(d);
    const st = $("status");
    st.className = "status";
    st.textContent = "updated " + new Date(d.now).toLocaleTimeString() + " · " + d.regions.length + " regions · " +
      d.samples.length + " samples";
  }

  async function poll() {
    clearTimeout(timer);
    let next = 1000;
    try {
      const r = await fetch("/ui/lag/data?window=" + windowSecs, { cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      render(await r.json());
    } catch (e) {
      const st = $("status");
      st.className = "status error";
      st.textContent = "cannot reach iamd (" + e.message + "); retrying — the figures below are from the last answer";
      next = 2000;
    }
    timer = setTimeout(poll, next);
  }

  function setWindow(secs) {
    windowSecs = secs;
    for (const o of document.querySelectorAll("#windows button")) o.classList.toggle("on", Number(o.dataset.window) === secs);
    $("window-label").textContent = secs >= 120 ? secs / 60 + " minutes" : secs + " seconds";
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const b of document.querySelectorAll("#windows button")) {
      b.addEventListener("click", () => {
        setWindow(Number(b.dataset.window));
        history.replaceState(null, "", "?window=" + windowSecs);
        poll();
      });
    }
    // /ui/lag?window=60 opens on a given window (10 to 600 seconds).
    const w = Number(new URLSearchParams(location.search).get("window"));
    if (w >= 10 && w <= 600) setWindow(Math.round(w));
    window.addEventListener("resize", () => { if (last) drawChart(last); });
    poll();
  });
})();
