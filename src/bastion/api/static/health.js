// Bastion console, System Health tab: the cached status the runtime acts on, the checks, the last
// runs as a strip, and a button that runs the checks now. Polls only while the tab is open.
(() => {
  "use strict";
  const { $, api, rows, updatedAt, refreshMs, currentTab, onTabChange } = window.Bastion;
  const HISTORY_RUNS = 50;
  const STATUSES = ["ok", "warn", "fail"];
  const statusClass = (status) => {
    const lower = String(status || "").toLowerCase();
    return STATUSES.includes(lower) ? lower : "none";
  };
  // Any instant from the API -> "2026-11-21 10:31 UTC" (or with seconds).
  const utc = (iso, seconds = false) => window.Bastion.utc(iso, seconds);
  const latency = (ms) => {
    if (ms === null || ms === undefined) return "–";
    return `${ms < 10 ? Number(ms).toFixed(1) : Math.round(ms)} ms`;
  };

  function renderStatus(h) {
    $("system-health-error").hidden = true;
    $("system-health-paused").hidden = !h.agent_paused_due_to_health;
    $("system-health-last-run").textContent = `Last run: ${h.last_run_at ? utc(h.last_run_at) : "never"}`;
    const badge = $("system-health-status-badge");
    badge.textContent = h.overall_status || "NO RUN";
    badge.className = `health-badge ${statusClass(h.overall_status)}`;
    const summary = $("system-health-status-summary");
    const explain = h.overall_status === "WARN" || h.overall_status === "FAIL";
    summary.textContent = explain ? h.summary || "" : "";
    summary.hidden = !explain;
    const tbody = $("system-health-checks").tBodies[0];
    rows(tbody, h.checks, (c) => [c.name, c.status, c.detail, latency(c.latency_ms)]);
    h.checks.forEach((c, i) => {
      const tr = tbody.rows[i];
      tr.cells[1].className = `check-status ${statusClass(c.status)}`;
      if (c.code) tr.cells[2].title = c.code;
    });
  }

  function renderHistory(runs) {
    const strip = $("system-health-history");
    strip.replaceChildren(
      ...runs
        .slice()
        .reverse()
        .map((run) => {
          const mark = document.createElement("span");
          mark.className = `run ${statusClass(run.overall_status)}`;
          mark.setAttribute("role", "listitem");
          mark.title = `${utc(run.last_run_at, true)} — ${run.overall_status} — ${run.summary || ""}`;
          return mark;
        }),
    );
    $("system-health-history-note").textContent = runs.length
      ? `last ${runs.length} run${runs.length === 1 ? "" : "s"}, oldest left`
      : "no runs yet";
  }

  function showError(err) {
    const box = $("system-health-error");
    box.textContent = `System Health unavailable: ${err.message}`;
    box.hidden = false;
    $("system-health-updated").textContent = "not updated";
  }

  async function refresh() {
    try {
      const [last, history] = await Promise.all([
        api("/api/system_health/last"),
        api(`/api/system_health/history?limit=${HISTORY_RUNS}`),
      ]);
      renderStatus(last);
      renderHistory(history.runs);
      $("system-health-updated").textContent = updatedAt();
    } catch (err) {
      showError(err);
    }
  }

  const button = $("system-health-run");
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.textContent = "Running…";
    try {
      renderStatus(await api("/api/agent_healthcheck", { method: "POST" }));
      await refresh();
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
      button.textContent = "Run healthcheck";
    }
  });

  onTabChange((name) => {
    if (name === "system-health") refresh();
  });
  if (currentTab() === "system-health") refresh();
  setInterval(() => {
    if (currentTab() === "system-health" && !button.disabled) refresh();
  }, refreshMs);
})();
