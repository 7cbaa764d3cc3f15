// Bastion console: tabs, and the Overview tab, which polls /api/status with the token from the
// page URL. Shares its helpers with the other tabs' scripts as window.Bastion.
(() => {
  "use strict";
  const params = new URLSearchParams(window.location.search);
  const token = params.get("token") || "";
  const refreshMs = Number(document.body.dataset.refreshMs) || 2000;
  const $ = (id) => document.getElementById(id);
  const fmt = (v, digits = 4) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
  const usd = (v) =>
    v === null || v === undefined
      ? "–"
      : `$${Number(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  // ISO-8601 from the API -> "2026-11-21 10:31:05 UTC"
  const utc = (iso) => (iso ? `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC` : "");

  async function api(path, options = {}) {
    const headers = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };
    const response = await fetch(path, { ...options, headers });
    if (response.status === 401) {
      $("auth-error").hidden = false;
      throw new Error("unauthorised");
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      const error = new Error(typeof body.detail === "string" ? body.detail : `${path}: HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  function rows(tbody, items, cells) {
    if (items.length === 0) {
      const td = document.createElement("td");
      td.colSpan = tbody.parentElement.tHead.rows[0].cells.length;
      td.className = "empty";
      td.textContent = "none";
      const tr = document.createElement("tr");
      tr.appendChild(td);
      tbody.replaceChildren(tr);
      return;
    }
    tbody.replaceChildren(
      ...items.map((item) => {
        const tr = document.createElement("tr");
        for (const value of cells(item)) {
          const td = document.createElement("td");
          td.textContent = value;
          tr.appendChild(td);
        }
        return tr;
      }),
    );
  }

  function renderBudget(b) {
    if (!b) return;
    const used = Number(b.tokens_used_today);
    const limit = b.daily_budget ? Number(b.daily_budget) : null;
    const share = limit ? Math.min(1, used / limit) : 0;
    $("budget-used").textContent = limit
      ? `${used.toLocaleString("en-US")} / ${limit.toLocaleString("en-US")}`
      : used.toLocaleString("en-US");
    const bar = $("budget-bar");
    bar.style.width = `${(share * 100).toFixed(1)}%`;
    bar.className = share >= 1 ? "full" : share >= 0.75 ? "high" : "";
    bar.parentElement.setAttribute("aria-valuenow", (share * 100).toFixed(1));
    $("budget-detail").textContent =
      `tokens · $${Number(b.usd_used_today).toFixed(2)} · ${b.invocations_today} calls` +
      (b.budget_available ? "" : " · EXHAUSTED");
  }

  function render(s) {
    $("auth-error").hidden = true;
    $("agent").textContent = `${s.agent} · run ${s.run_id}${s.dry_run ? " · dry run" : ""}`;
    const badge = $("state-badge");
    badge.textContent = s.state;
    badge.className = `badge ${s.state}`;
    $("halt-banner").hidden = !s.halted;
    $("halt-reason").textContent = s.halt ? s.halt.reason : "";
    $("halt-who").textContent = s.halt ? `(by ${s.halt.who}, ${utc(s.halt.when)})` : "";
    $("last-step").textContent = `#${s.last_step} ${s.last_outcome || ""}`;
    $("last-step-at").textContent = utc(s.last_step_at);
    $("equity").textContent = `${fmt(s.equity)} ${s.currency}`;
    $("balance").textContent = `balance ${fmt(s.balance)} ${s.currency}`;
    $("index-price").textContent = usd(s.index_price);
    $("orders").textContent = `${s.orders_sent} / ${s.orders_filled}`;
    renderBudget(s.budget);
    rows($("positions").tBodies[0], s.positions, (p) => [
      p.instrument, p.size, fmt(p.average_price), fmt(p.mark_price), fmt(p.floating_profit_loss, 6),
    ]);
    rows($("open-orders").tBodies[0], s.open_orders, (o) => [
      o.order_id, o.instrument, o.direction, o.amount, o.price === null ? "market" : o.price, o.label,
    ]);
    rows($("breakers").tBodies[0], s.breakers || [], (b) => [
      b.dependency, b.layer, b.state.replace("_", "-"), b.failures,
      b.retry_after === null ? "" : `${b.retry_after} s`,
    ]);
    for (const tr of $("breakers").tBodies[0].rows) {
      const cell = tr.cells[2];
      if (cell) cell.className = `circuit ${cell.textContent}`;
    }
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  async function refresh() {
    try {
      render(await api("/api/status"));
    } catch (err) {
      $("updated").textContent = `not updated: ${err.message}`;
    }
  }

  $("kill").addEventListener("click", async () => {
    const reason = window.prompt("Reason for the halt?", "operator via console");
    if (reason) await api("/api/kill", { method: "POST", body: JSON.stringify({ reason }) });
    refresh();
  });
  $("resume").addEventListener("click", async () => {
    const reason = window.prompt("Why is it safe to resume?", "");
    if (reason) await api("/api/resume", { method: "POST", body: JSON.stringify({ reason }) });
    refresh();
  });

  // Tabs: the URL hash names the open one (#overview, #system-health, #approvals), so a link or a
  // reload opens the same tab; arrow keys, Home and End move between tabs as WAI-ARIA describes.
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const tabListeners = [];
  const tabNames = tabs.map((tab) => tab.dataset.tab);
  const hashTab = () => {
    const name = window.location.hash.slice(1);
    return tabNames.includes(name) ? name : tabNames[0];
  };
  let currentTab = "";

  function showTab(name) {
    currentTab = name;
    for (const tab of tabs) {
      const selected = tab.dataset.tab === name;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      $(tab.getAttribute("aria-controls")).hidden = !selected;
    }
    for (const listener of tabListeners) listener(name);
  }

  for (const tab of tabs) {
    tab.addEventListener("click", () => {
      window.location.hash = tab.dataset.tab;
    });
    tab.addEventListener("keydown", (event) => {
      const at = tabs.indexOf(tab);
      const to = {
        ArrowRight: (at + 1) % tabs.length,
        ArrowLeft: (at - 1 + tabs.length) % tabs.length,
        Home: 0,
        End: tabs.length - 1,
      }[event.key];
      if (to === undefined) return;
      event.preventDefault();
      tabs[to].focus();
      window.location.hash = tabs[to].dataset.tab;
    });
  }
  window.addEventListener("hashchange", () => showTab(hashTab()));
  showTab(hashTab());

  window.Bastion = Object.freeze({
    $,
    api,
    rows,
    refreshMs,
    currentTab: () => currentTab,
    onTabChange: (listener) => tabListeners.push(listener),
  });

  refresh();
  setInterval(refresh, refreshMs);
})();
