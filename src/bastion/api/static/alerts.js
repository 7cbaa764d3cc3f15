// Bastion console, Alerts: what Alertmanager delivered to the operator, its analysis and the
// actions it proposes, from GET /api/alerts (the shape is in the issue-12 contracts). An action
// that waits for a person (safety mode) is approved or rejected through the approvals route,
// POST /api/approvals/{approval_id}, recorded as whoever the console token names. Polls while
// the tab is open; a console that serves no alerts (404, or 503 with the reason: no operator)
// says so once and stops asking.
(() => {
  "use strict";
  const { $, api, utc, updatedAt, pollTab } = window.Bastion;
  let shown = "";

  function node(tag, text, className) {
    const n = document.createElement(tag);
    if (text !== undefined && text !== null) n.textContent = String(text);
    if (className) n.className = className;
    return n;
  }

  function showMessage(text, kind) {
    const box = $("alerts-message");
    box.textContent = text;
    box.className = kind;
    box.hidden = false;
  }

  function analysis(a) {
    if (!a) return node("p", "Not analysed yet.", "empty");
    const box = node("div", null, "analysis");
    const head = `${a.source} · ${a.issue_detected ? a.issue_type : "no issue"} · ${a.severity} · confidence ${Number(a.confidence).toFixed(2)}`;
    box.append(node("p", head + (a.requires_immediate_action ? " · IMMEDIATE" : ""), "analysis-head"), node("p", a.description));
    if (a.recommended_actions && a.recommended_actions.length) {
      const list = node("ul");
      for (const step of a.recommended_actions) list.appendChild(node("li", step));
      box.appendChild(list);
    }
    return box;
  }

  function actionRow(action, alert) {
    const tr = document.createElement("tr");
    tr.dataset.actionId = action.id;
    tr.append(
      node("td", action.action, "action-name"),
      node("td", JSON.stringify(action.params || {}), "params"),
      node("td", action.status, `outcome ${action.status}`),
      node("td", action.decided_by || "–", "by"),
      node("td", action.outcome ? `${action.outcome.validated ? "validated" : "not validated"}${action.outcome.effective === null ? "" : action.outcome.effective ? ", effective" : ", not effective"}: ${action.outcome.detail}` : "–", "reason"),
    );
    const decide = node("td", null, "actions");
    if (action.status === "proposed" && action.approval_id) {
      for (const [text, decision] of [["Approve", "approve"], ["Reject", "reject"]]) {
        const b = node("button", text, decision);
        b.type = "button";
        b.setAttribute("aria-label", `${text} ${action.action} for ${alert.alertname}`);
        b.addEventListener("click", () => decideAction(action, decision, tr));
        decide.appendChild(b);
      }
    }
    tr.appendChild(decide);
    return tr;
  }

  function alertCard(alert) {
    const card = node("article", null, `alert-card ${alert.status}`);
    card.dataset.alertId = alert.id;
    const head = node("h3");
    head.append(
      node("span", alert.severity || "–", `severity ${alert.severity || ""}`),
      ` ${alert.alertname} · ${alert.status} · since ${utc(alert.starts_at)}`,
      alert.ends_at ? ` · ended ${utc(alert.ends_at)}` : "",
    );
    card.append(head, node("p", alert.summary || "", "summary"), analysis(alert.analysis));
    const labels = Object.entries(alert.labels || {}).map(([k, v]) => `${k}=${v}`).join(" ");
    if (labels) card.appendChild(node("p", labels, "labels"));
    const table = node("table", null, "alert-actions");
    const thead = node("thead");
    const hr = node("tr");
    for (const h of ["Action", "Params", "Status", "By", "Outcome", "Decision"]) hr.appendChild(node("th", h));
    thead.appendChild(hr);
    const tbody = node("tbody");
    const actions = alert.actions || [];
    if (!actions.length) {
      const tr = node("tr");
      const td = node("td", "no action proposed", "empty");
      td.colSpan = 6;
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
    for (const action of actions) tbody.appendChild(actionRow(action, alert));
    table.append(thead, tbody);
    const scroll = node("div", null, "scroll");
    scroll.appendChild(table);
    card.appendChild(scroll);
    return card;
  }

  function render(alerts) {
    const signature = JSON.stringify(alerts);
    if (signature === shown) return; // a poll never steals focus from a button
    shown = signature;
    const list = $("alerts-list");
    if (!alerts.length) {
      list.replaceChildren(node("p", "No alerts.", "empty"));
      return;
    }
    list.replaceChildren(...alerts.map(alertCard));
  }

  async function refresh() {
    try {
      const body = await api(`/api/alerts?status=${encodeURIComponent($("alerts-status").value)}`);
      $("alerts-error").hidden = true;
      render(body.alerts || []);
      $("alerts-updated").textContent = updatedAt();
    } catch (err) {
      shown = "";
      $("alerts-error").textContent = err.status === 404
        ? "No operator alerts on this console: it does not serve /api/alerts."
        : `Alerts unavailable: ${err.message}`;
      $("alerts-error").hidden = false;
      $("alerts-updated").textContent = "not updated";
      return err.status !== 404 && err.status !== 503; // neither route nor provider comes back
    }
    return true;
  }

  async function decideAction(action, decision, tr) {
    const verb = decision === "approve" ? "Approve" : "Reject";
    const note = window.prompt(`${verb} ${action.action}?\nNote (optional):`, "");
    if (note === null) return;
    for (const b of tr.querySelectorAll("button")) b.disabled = true;
    try {
      const record = await api(`/api/approvals/${encodeURIComponent(action.approval_id)}`, {
        method: "POST",
        body: JSON.stringify({ decision, note: note.trim() || null }),
      });
      showMessage(`${action.action} ${record.status} by ${record.decided_by}.`, "done");
    } catch (err) {
      const prefix = err.status === 409 ? "Not recorded" : `Could not ${decision}`;
      showMessage(`${prefix}: ${err.message}`, "error");
      for (const b of tr.querySelectorAll("button")) b.disabled = false;
    }
    shown = "";
    await refresh();
  }

  const askNow = pollTab("alerts", refresh);
  $("alerts-status").addEventListener("change", () => {
    shown = "";
    askNow();
  });
})();
