// Bastion console, Approvals: what waits for a person (LLM escalations, orders needing approval)
// with Approve / Reject, and the last decisions. The pending count polls on every tab, so the tab
// badge and the Overview card show it wherever the operator is; the lists poll while the tab is open.
(() => {
  "use strict";
  const { $, api, utc, updatedAt, refreshMs, currentTab, onTabChange } = window.Bastion;
  const PENDING_LIMIT = 100;
  const DECIDED_SHOWN = 20;
  const SUBJECT_CHARS = 140;
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  // {"input_class": "quote", "models": ["a", "b"], "errors": [{kind: "network"}, …]}
  //   -> "input_class: quote · models: a, b · errors: network, rate_limit"
  function compactValue(value) {
    if (value === null || value === undefined) return "–";
    if (Array.isArray(value)) {
      return value
        .map((item) =>
          item !== null && typeof item === "object" ? item.kind || item.name || item.id || "{…}" : String(item),
        )
        .join(", ");
    }
    if (typeof value === "object") return "{…}";
    return String(value);
  }

  // An order approval reads as the order it would send: "buy 10 BTC-PERPETUAL limit @ 80000".
  function orderLine(subject) {
    const s = subject || {};
    const at = s.price === null || s.price === undefined ? "" : ` @ ${s.price}`;
    const reduce = s.reduce_only ? " (reduce-only)" : "";
    return `${s.direction} ${s.amount} ${s.instrument} ${s.order_type}${at}${reduce}`;
  }

  function compactSubject(subject, kind) {
    if (kind === "order") return orderLine(subject);
    const text = Object.entries(subject || {})
      .map(([key, value]) => `${key}: ${compactValue(value)}`)
      .join(" · ");
    return text.length > SUBJECT_CHARS ? `${text.slice(0, SUBJECT_CHARS - 1)}…` : text;
  }

  function cell(tr, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    tr.appendChild(td);
    return td;
  }

  function emptyRow(tbody, text) {
    const tr = document.createElement("tr");
    const td = cell(tr, text, "empty");
    td.colSpan = tbody.parentElement.tHead.rows[0].cells.length;
    tbody.replaceChildren(tr);
  }

  function subjectCell(tr, subject, kind) {
    const td = cell(tr, "", "subject");
    const summary = compactSubject(subject, kind);
    if (!summary) {
      td.textContent = "–";
      return;
    }
    const details = document.createElement("details");
    const label = document.createElement("summary");
    label.textContent = summary;
    const full = document.createElement("pre");
    full.textContent = JSON.stringify(subject, null, 2);
    details.append(label, full);
    td.appendChild(details);
  }

  function button(text, className, label, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = className;
    b.textContent = text;
    b.setAttribute("aria-label", label);
    b.addEventListener("click", onClick);
    return b;
  }

  function showMessage(text, kind) {
    const box = $("approvals-message");
    box.textContent = text;
    box.className = kind;
    box.hidden = false;
  }

  function renderCount(count) {
    const badge = $("approvals-tab-count");
    badge.textContent = String(count);
    badge.title = `${plural(count, "approval")} pending`;
    badge.className = count > 0 ? "count waiting" : "count";
    badge.hidden = count === 0;
    $("approvals-pending-count").textContent = count > 0 ? `${count} pending` : "none pending";
    $("approvals-card").classList.toggle("attention", count > 0);
  }

  let shownPending = "";

  function renderPending(entries, count) {
    const signature = JSON.stringify(entries);
    $("approvals-card-detail").textContent = entries.length
      ? `oldest ${utc(entries[entries.length - 1].created_at, false)} ·`
      : "";
    $("approvals-pending-note").textContent =
      count > entries.length ? `newest ${entries.length} of ${count}` : "";
    // Redraw only on change, so a poll never steals focus from a button or closes a subject.
    if (signature === shownPending) return;
    shownPending = signature;
    const tbody = $("approvals-pending").tBodies[0];
    if (entries.length === 0) {
      emptyRow(tbody, "No approvals pending");
      return;
    }
    tbody.replaceChildren(
      ...entries.map((a) => {
        const tr = document.createElement("tr");
        tr.dataset.approvalId = a.id;
        const asked = cell(tr, utc(a.created_at), "asked");
        if (a.expires_at) {
          const expires = document.createElement("small");
          expires.textContent = `expires ${utc(a.expires_at)}`;
          asked.append(document.createElement("br"), expires);
        }
        cell(tr, a.kind, "kind");
        cell(tr, a.agent);
        cell(tr, a.reason, "reason");
        subjectCell(tr, a.subject, a.kind);
        const actions = cell(tr, "", "actions");
        const what = `${a.kind} asked ${utc(a.created_at)}`;
        actions.append(
          button("Approve", "approve", `Approve ${what}`, () => decide(a, "approve", tr)),
          button("Reject", "reject", `Reject ${what}`, () => decide(a, "reject", tr)),
        );
        return tr;
      }),
    );
  }

  function renderDecided(entries) {
    const tbody = $("approvals-decided").tBodies[0];
    const decided = entries.filter((a) => a.status !== "pending").slice(0, DECIDED_SHOWN);
    if (decided.length === 0) {
      emptyRow(tbody, "none yet");
      return;
    }
    tbody.replaceChildren(
      ...decided.map((a) => {
        const tr = document.createElement("tr");
        tr.dataset.approvalId = a.id;
        cell(tr, utc(a.decided_at));
        cell(tr, a.kind);
        cell(tr, a.agent);
        cell(tr, a.status, `outcome ${a.status}`);
        cell(tr, a.decided_by || "–");
        cell(tr, a.note || "");
        return tr;
      }),
    );
  }

  async function refresh() {
    const open = currentTab() === "approvals";
    try {
      const [pending, recent] = await Promise.all([
        api(`/api/approvals?status=pending&limit=${PENDING_LIMIT}`),
        open ? api(`/api/approvals?status=all&limit=${PENDING_LIMIT + DECIDED_SHOWN}`) : null,
      ]);
      renderCount(pending.pending);
      $("approvals-card-detail").title = "";
      renderPending(pending.approvals, pending.pending);
      if (recent) renderDecided(recent.approvals);
      $("approvals-updated").textContent = updatedAt();
    } catch (err) {
      shownPending = "";
      emptyRow($("approvals-pending").tBodies[0], `Approvals unavailable: ${err.message}`);
      $("approvals-pending-count").textContent = "–";
      $("approvals-card-detail").textContent = "unavailable ·";
      $("approvals-card-detail").title = err.message;
      $("approvals-updated").textContent = `not updated: ${err.message}`;
    }
  }

  async function decide(entry, decision, tr) {
    const verb = decision === "approve" ? "Approve" : "Reject";
    const note = window.prompt(`${verb} this ${entry.kind} from ${entry.agent}?\nNote (optional):`, "");
    if (note === null) return;
    const buttons = tr.querySelectorAll("button");
    for (const b of buttons) b.disabled = true;
    try {
      const record = await api(`/api/approvals/${encodeURIComponent(entry.id)}`, {
        method: "POST",
        body: JSON.stringify({ decision, note: note.trim() || null }),
      });
      showMessage(`${entry.kind} ${entry.id.slice(0, 8)} ${record.status} by ${record.decided_by}.`, "done");
    } catch (err) {
      // 409: someone else (or the clock) decided first; the message says who and when.
      const prefix = err.status === 409 ? "Not recorded" : `Could not ${decision}`;
      showMessage(`${prefix}: ${err.message}`, "error");
      for (const b of buttons) b.disabled = false;
    }
    await refresh();
  }

  onTabChange((name) => {
    if (name === "approvals") refresh();
  });
  refresh();
  setInterval(refresh, refreshMs);
})();
