// Bastion console: tabs, and the Overview tab, which polls /api/status with the token from the
// page URL. Shares its helpers with the other tabs' scripts as window.Bastion.
(() => {
  "use strict";
  const TOKEN_KEY = "bastion-console-token";
  const token = takeToken();
  const refreshMs = Number(document.body.dataset.refreshMs) || 2000;
  const $ = (id) => document.getElementById(id);
  const fmt = (v, digits = 4) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
  const usd = (v) =>
    v === null || v === undefined
      ? "–"
      : `$${Number(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;

  // The token arrives in the URL `bastion run` printed. Keep it for this tab (a reload still
  // works) and take it out of the address bar, history and any screenshot of the page. If it
  // cannot be kept, it stays in the URL: a console that forgets its token on reload is worse.
  function takeToken() {
    const params = new URLSearchParams(window.location.search);
    const offered = params.get("token");
    let kept = null;
    try {
      if (offered) window.sessionStorage.setItem(TOKEN_KEY, offered);
      kept = window.sessionStorage.getItem(TOKEN_KEY);
    } catch {
      return offered || "";
    }
    if (offered && kept === offered) {
      params.delete("token");
      const query = params.toString();
      const { pathname, hash } = window.location;
      window.history.replaceState(window.history.state, "", `${pathname}${query ? `?${query}` : ""}${hash}`);
    }
    return offered || kept || "";
  }

  // Any instant from the API (ISO-8601, with or without an offset; the API means UTC when it
  // gives none) or a Date -> "2026-12-02 04:21:28 UTC" (or to the minute). Every time the
  // console shows is UTC, like the logs, traces and `bastion status`.
  function utc(value, seconds = true) {
    if (value === null || value === undefined || value === "") return "";
    let when = value;
    if (!(value instanceof Date)) {
      const text = String(value);
      when = new Date(/^\d{4}-\d\d-\d\dT[\d:.]+$/.test(text) ? `${text}Z` : text);
    }
    if (Number.isNaN(when.getTime())) return String(value);
    const iso = when.toISOString();
    return `${iso.slice(0, 10)} ${iso.slice(11, seconds ? 19 : 16)} UTC`;
  }
  const updatedAt = () => `updated ${utc(new Date())}`;

  // /api/status carries no tick size, so prices are shown to the decimals Deribit's ticks allow
  // for the instrument's kind, trimmed: options 0.0001 / 0.0005 BTC (4 decimals), perpetuals
  // 0.5 USD and futures 2.5 USD (1 decimal). Anything else keeps up to 8, without float noise.
  const OPTION = /^[A-Z]+(_[A-Z]+)?-\d{1,2}[A-Z]{3}\d{2}-[0-9d.]+-[CP]$/;
  const FUTURE = /^[A-Z]+(_[A-Z]+)?-(PERPETUAL|\d{1,2}[A-Z]{3}\d{2})$/;
  const priceDecimals = (instrument) => {
    const name = String(instrument || "");
    if (OPTION.test(name)) return 4;
    return FUTURE.test(name) ? 1 : 8;
  };
  const price = (v, instrument) =>
    v === null || v === undefined
      ? "–"
      : Number(v).toLocaleString("en-US", { maximumFractionDigits: priceDecimals(instrument) });
  // Amounts: Deribit steps are 0.1 BTC for options and 10 USD for perpetuals; 4 decimals is
  // ample and hides float noise such as 0.30000000000000004.
  const amount = (v) =>
    v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US", { maximumFractionDigits: 4 });

  // A breaker forgets its failure count when it opens, so an open or half-open breaker shows
  // what opened it: the snapshot's reason (a failed probe too), else its configured threshold.
  function breakerFailures(b) {
    if (b.state !== "closed" && b.opened_because) {
      return `tripped: ${b.opened_because}${b.state === "half_open" ? " · probing" : ""}`;
    }
    const config = b.config || {};
    const threshold = config.failure_threshold;
    if (threshold === undefined || threshold === null) return String(b.failures);
    const span = config.window === null || config.window === undefined ? "in a row" : `within ${config.window} s`;
    if (b.state === "closed") return `${b.failures} of ${threshold} ${span}`;
    return `tripped: ${threshold} ${span}${b.state === "half_open" ? " · probing" : ""}`;
  }

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

  function haltTitle(halt, reducing) {
    const pending = halt && !halt.enforced ? " (cancelling resting orders)" : "";
    if (reducing) return `REDUCING${pending || " (only orders that shrink a position)"}`;
    return pending ? `HALTING${pending}` : "HALTED";
  }

  // When the halt lapses, and whether that resumes trading or waits for a person.
  function haltUntil(s) {
    if (!s.halt) return "";
    if (!s.halt_until) return "until a person resumes";
    const then = s.halt_auto_resume ? "then trading resumes by itself" : "then a person resumes";
    return `until ${utc(s.halt_until)}, ${then}`;
  }

  function render(s) {
    $("auth-error").hidden = true;
    $("agent").textContent = `${s.agent} · run ${s.run_id}${s.dry_run ? " · dry run" : ""}`;
    const reducing = s.trading_state === "reducing";
    const shown = reducing && s.state === "halted" ? "reducing" : s.state;
    const badge = $("state-badge");
    badge.textContent = shown;
    badge.className = `badge ${shown}`;
    $("halt-banner").hidden = !s.halted;
    $("halt-banner").className = reducing ? "halt reducing" : "halt";
    $("halt-title").textContent = haltTitle(s.halt, reducing);
    $("halt-reason").textContent = s.halt ? s.halt.reason : "";
    $("halt-who").textContent = s.halt ? `(by ${s.halt.who}, ${utc(s.halt.when)})` : "";
    $("halt-until").textContent = haltUntil(s);
    $("fleet-banner").hidden = !s.fleet_halt;
    $("fleet-detail").textContent = s.fleet_halt
      ? `${s.fleet_halt.reason} (by ${s.fleet_halt.who}, ${utc(s.fleet_halt.when)})`
      : "";
    $("last-step").textContent = `#${s.last_step} ${s.last_outcome || ""}`;
    $("last-step-at").textContent = utc(s.last_step_at);
    $("equity").textContent = `${fmt(s.equity)} ${s.currency}`;
    $("balance").textContent = `balance ${fmt(s.balance)} ${s.currency}`;
    $("index-price").textContent = usd(s.index_price);
    $("orders").textContent = `${s.orders_sent} / ${s.orders_filled}`;
    renderBudget(s.budget);
    rows($("positions").tBodies[0], s.positions, (p) => [
      p.instrument,
      amount(p.size),
      price(p.average_price, p.instrument),
      price(p.mark_price, p.instrument),
      fmt(p.floating_profit_loss, 6),
    ]);
    rows($("open-orders").tBodies[0], s.open_orders, (o) => [
      o.order_id,
      o.instrument,
      o.direction,
      amount(o.amount),
      o.price === null ? "market" : price(o.price, o.instrument),
      o.label,
    ]);
    // A label opens the Why tab on it (why.js listens for data-why-label).
    s.open_orders.forEach((o, i) => {
      if (!o.label) return;
      const link = document.createElement("button");
      link.type = "button";
      link.className = "link";
      link.dataset.whyLabel = o.label;
      link.title = "Why was this order sent?";
      link.textContent = o.label;
      $("open-orders").tBodies[0].rows[i].cells[5].replaceChildren(link);
    });
    const breakers = s.breakers || [];
    rows($("breakers").tBodies[0], breakers, (b) => [
      b.dependency,
      b.layer,
      b.state.replace("_", "-"),
      breakerFailures(b),
      b.retry_after === null || b.retry_after === undefined ? "" : `${Math.ceil(b.retry_after)} s`,
    ]);
    breakers.forEach((b, i) => {
      const tr = $("breakers").tBodies[0].rows[i];
      tr.cells[2].className = `circuit ${b.state.replace("_", "-")}`;
      if (b.state !== "closed") {
        tr.cells[3].title = "A breaker clears its count when it opens: this is the threshold it reached.";
      }
    });
    // Offer only the control that applies; the API would accept either, but a second kill
    // would only overwrite who halted and why.
    $("kill").disabled = Boolean(s.halted);
    $("resume").disabled = !s.halted;
    $("updated").textContent = updatedAt();
  }

  async function refresh() {
    try {
      render(await api("/api/status"));
    } catch (err) {
      $("updated").textContent = `not updated: ${err.message}`;
    }
  }

  async function control(path, question, suggestion) {
    const reason = window.prompt(question, suggestion);
    if (!reason) return;
    $("kill").disabled = $("resume").disabled = true;
    try {
      await api(path, { method: "POST", body: JSON.stringify({ reason }) });
    } catch (err) {
      $("updated").textContent = `${path} failed: ${err.message}`;
    }
    await refresh();
  }
  $("kill").addEventListener("click", () => control("/api/kill", "Reason for the halt?", "operator via console"));
  $("resume").addEventListener("click", () => control("/api/resume", "Why is it safe to resume?", ""));

  // Tabs: the URL hash names the open one (#overview, #system-health, #approvals, #why), so a link or a
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

  // Ask `load` while `tab` is open (when it opens, then every refreshMs): one request in flight at
  // a time, so a slow answer is not asked again meanwhile, and never again once `load` answers
  // false (a console built without that route or provider: its 404 or 503 does not go away).
  // Returns the function that asks at once, for a panel whose filter changed.
  function pollTab(tab, load) {
    let busy = false;
    let gone = false;
    const ask = async () => {
      if (busy || gone) return;
      busy = true;
      try {
        gone = (await load()) === false;
      } finally {
        busy = false;
      }
    };
    const due = () => {
      if (currentTab === tab) ask();
    };
    tabListeners.push(due);
    due();
    setInterval(due, refreshMs);
    return ask;
  }

  window.Bastion = Object.freeze({
    $,
    api,
    rows,
    utc,
    updatedAt,
    refreshMs,
    currentTab: () => currentTab,
    onTabChange: (listener) => tabListeners.push(listener),
    pollTab,
  });

  refresh();
  setInterval(refresh, refreshMs);
})();
