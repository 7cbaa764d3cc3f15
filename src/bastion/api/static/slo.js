// Bastion console, SLOs: the three service-level objectives with their error budgets, burn
// rates and burn-rate alerts, and every alert firing in-process, from GET /api/slo (the shape is
// in the issue-12 contracts). Polls while the tab is open; a console that serves no SLOs (404, or
// 503 with the reason) says so once and stops asking.
(() => {
  "use strict";
  const { $, api, utc, updatedAt, pollTab } = window.Bastion;
  const WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"];

  const pct = (v, digits = 2) => (v === null || v === undefined ? "–" : `${(Number(v) * 100).toFixed(digits)}%`);
  const threshold = (s) => {
    if (s.threshold === null || s.threshold === undefined) return "–";
    return s.unit === "usd" ? `$${Number(s.threshold).toFixed(2)}` : `${s.threshold} ${s.unit || ""}`.trim();
  };

  function cell(tr, content, className) {
    const td = document.createElement("td");
    if (content instanceof Node) td.appendChild(content);
    else td.textContent = content;
    if (className) td.className = className;
    tr.appendChild(td);
    return td;
  }

  function budgetMeter(remaining) {
    const box = document.createElement("div");
    const meter = document.createElement("div");
    meter.className = "meter";
    meter.setAttribute("role", "meter");
    meter.setAttribute("aria-valuemin", "0");
    meter.setAttribute("aria-valuemax", "100");
    const bar = document.createElement("span");
    const share = Math.max(0, Math.min(1, Number(remaining)));
    bar.style.width = `${(share * 100).toFixed(1)}%`;
    bar.className = share <= 0 ? "full" : share < 0.25 ? "high" : "";
    meter.setAttribute("aria-valuenow", (share * 100).toFixed(1));
    meter.appendChild(bar);
    const label = document.createElement("small");
    if (remaining === null || remaining === undefined) label.textContent = "–";
    else label.textContent = remaining < 0 ? `overspent (${pct(remaining, 1)})` : `${pct(remaining, 1)} left`;
    box.append(meter, label);
    return box;
  }

  function burnRates(rates) {
    return WINDOWS.filter((w) => rates && rates[w] !== null && rates[w] !== undefined)
      .map((w) => `${w} ${Number(rates[w]).toFixed(2)}×`)
      .join(" · ") || "–";
  }

  function alertPairs(alerts) {
    const list = document.createElement("ul");
    list.className = "pairs";
    for (const a of alerts || []) {
      const li = document.createElement("li");
      li.textContent = `${a.severity} ${a.long}/${a.short} ×${a.factor}${a.firing ? " FIRING" : ""}`;
      li.className = a.firing ? "firing" : "";
      list.appendChild(li);
    }
    return list;
  }

  function renderSlos(slos) {
    const tbody = $("slo-table").tBodies[0];
    if (!slos.length) {
      window.Bastion.rows(tbody, [], () => []);
      return;
    }
    tbody.replaceChildren(
      ...slos.map((s) => {
        const tr = document.createElement("tr");
        tr.dataset.slo = s.name;
        const name = cell(tr, s.name, "slo-name");
        name.title = s.description || "";
        cell(tr, pct(s.objective, 1));
        cell(tr, threshold(s));
        cell(tr, s.total ? `${pct(s.sli)} (${s.good}/${s.total})` : "no tasks");
        cell(tr, budgetMeter(s.error_budget_remaining), "budget");
        cell(tr, burnRates(s.burn_rates), "burn");
        cell(tr, alertPairs(s.alerts));
        return tr;
      }),
    );
  }

  function renderFiring(firing) {
    window.Bastion.rows($("slo-firing").tBodies[0], firing, (a) => [
      a.severity || "",
      a.alertname || "",
      a.summary || "",
      utc(a.since),
    ]);
  }

  async function refresh() {
    try {
      const report = await api("/api/slo");
      $("slo-error").hidden = true;
      $("slo-period").textContent = `${report.period_days}-day window, evaluated ${utc(report.evaluated_at)}`;
      renderSlos(report.slos || []);
      renderFiring(report.firing || []);
      $("slo-updated").textContent = updatedAt();
    } catch (err) {
      $("slo-error").textContent = err.status === 404
        ? "No SLOs on this console: it does not serve /api/slo."
        : `SLOs unavailable: ${err.message}`;
      $("slo-error").hidden = false;
      $("slo-updated").textContent = "not updated";
      return err.status !== 404 && err.status !== 503; // neither route nor provider comes back
    }
    return true;
  }

  pollTab("slo", refresh);
})();
