// Bastion console, Overview: the run's equity and P&L over time, from /api/equity, as inline SVG.
// Drawn here rather than with a charting library: the console loads nothing from a CDN (it must
// work with no network, under a self-only CSP) and one line chart is fifty lines of SVG, less
// than a vendored library's licence header. Polls while the Overview tab is open.
(() => {
  "use strict";
  const { $, api, utc, pollTab } = window.Bastion;
  const SVG = "http://www.w3.org/2000/svg";
  const W = 800;
  const H = 220;
  const PAD = { left: 78, right: 86, top: 12, bottom: 28 };
  const MARKED = 120; // up to this many points, each is marked with a dot
  let shown = "";

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Equity in the account's currency to the satoshi; P&L signed.
  const coin = (v) => Number(v).toFixed(Math.abs(v) >= 1000 ? 2 : 6);
  const signed = (v) => `${v > 0 ? "+" : ""}${coin(v)}`;

  function scale(points) {
    const times = points.map((p) => p.time_ms);
    const values = points.map((p) => p.equity);
    let [t0, t1] = [Math.min(...times), Math.max(...times)];
    let [v0, v1] = [Math.min(...values), Math.max(...values)];
    if (t1 === t0) [t0, t1] = [t0 - 1, t1 + 1];
    if (v1 === v0) {
      const room = Math.abs(v0) * 1e-6 || 1e-6; // a flat line sits mid-chart
      [v0, v1] = [v0 - room, v1 + room];
    }
    const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * (W - PAD.left - PAD.right);
    const y = (v) => H - PAD.bottom - ((v - v0) / (v1 - v0)) * (H - PAD.top - PAD.bottom);
    return { x, y, v0, v1, t0, t1 };
  }

  function draw(series) {
    const svg = $("equity-chart");
    const points = series.points || [];
    svg.dataset.points = String(points.length);
    if (points.length === 0) {
      svg.replaceChildren(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, "no observation yet"));
      return;
    }
    const start = series.start_equity;
    const { x, y, v0, v1, t0, t1 } = scale(points);
    const nodes = [];
    for (const v of [v0, (v0 + v1) / 2, v1]) {
      nodes.push(el("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "grid" }));
      nodes.push(el("text", { x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, coin(v)));
      nodes.push(el("text", { x: W - PAD.right + 6, y: y(v) + 4, class: "axis pnl" }, signed(v - start)));
    }
    if (start >= v0 && start <= v1) {
      nodes.push(el("line", { x1: PAD.left, x2: W - PAD.right, y1: y(start), y2: y(start), class: "baseline" }));
    }
    nodes.push(el("text", { x: PAD.left, y: H - 8, class: "axis" }, utc(new Date(t0), false)));
    nodes.push(el("text", { x: W - PAD.right, y: H - 8, "text-anchor": "end", class: "axis" }, utc(new Date(t1), false)));
    const line = points.map((p) => `${x(p.time_ms).toFixed(1)},${y(p.equity).toFixed(1)}`).join(" ");
    nodes.push(el("polyline", { points: line, class: `equity-line ${points.at(-1).pnl < 0 ? "down" : "up"}` }));
    if (points.length <= MARKED) {
      for (const p of points) {
        const dot = el("circle", { cx: x(p.time_ms), cy: y(p.equity), r: 2.5, class: "pt" });
        dot.appendChild(el("title", {}, `${utc(new Date(p.time_ms))} · step ${p.step ?? "–"} · ${coin(p.equity)} · P&L ${signed(p.pnl)}`));
        nodes.push(dot);
      }
    }
    svg.replaceChildren(...nodes);
  }

  function summarise(series) {
    const points = series.points || [];
    const currency = series.currency || "";
    if (points.length === 0) {
      $("equity-summary").textContent = "waiting for the first observation";
      return;
    }
    const last = points.at(-1);
    const thinned = series.stride > 1 ? ` · 1 point per ${series.stride} observations` : "";
    $("equity-pnl").textContent = `${signed(last.pnl)} ${currency}`;
    $("equity-pnl").className = last.pnl < 0 ? "pnl down" : "pnl up";
    $("equity-summary").textContent =
      `equity ${coin(last.equity)} ${currency} · since ${utc(new Date(points[0].time_ms), false)} · ` +
      `${series.samples} observations${thinned}`;
  }

  async function refresh() {
    try {
      const series = await api("/api/equity");
      const signature = `${series.samples}:${series.points.length}:${series.points.at(-1)?.equity}`;
      $("equity-error").hidden = true;
      if (signature === shown) return true;
      shown = signature;
      draw(series);
      summarise(series);
    } catch (err) {
      shown = "";
      // A console built without a series (404/503) never gains one: hide the chart, stop asking.
      const unavailable = err.status === 404 || err.status === 503;
      $("equity-chart").toggleAttribute("hidden", unavailable); // an SVG element has no .hidden
      $("equity-error").textContent = `Equity chart unavailable: ${err.message}`;
      $("equity-error").hidden = false;
      return !unavailable;
    }
    return true;
  }

  pollTab("overview", refresh);
})();
