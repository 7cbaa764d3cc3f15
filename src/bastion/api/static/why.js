// Bastion console, Why: an order's label followed back through its run's trace to the decision
// (the agent's, or the loop's flatten), the LLM answer that produced it and the risk verdict,
// from GET /api/orders/{label}/why. A label in the Overview's open orders opens it. Everything
// shown comes from the trace (model text included), so it is set as text, never parsed as HTML.
(() => {
  "use strict";
  const { $, api, utc } = window.Bastion;
  const ANSWER_CHARS = 4000;

  function node(tag, text, className) {
    const n = document.createElement(tag);
    if (text !== undefined && text !== null) n.textContent = String(text);
    if (className) n.className = className;
    return n;
  }

  // [["Instrument", "BTC-PERPETUAL"], …] -> <dl>; empty values are left out.
  function facts(pairs) {
    const dl = node("dl", null, "facts");
    for (const [term, value] of pairs) {
      if (value === null || value === undefined || value === "") continue;
      dl.append(node("dt", term), node("dd", typeof value === "object" ? JSON.stringify(value) : value));
    }
    return dl;
  }

  function intentLine(i) {
    if (!i) return "–";
    const at = i.price === null || i.price === undefined ? "" : ` @ ${i.price}`;
    return `${i.direction} ${i.amount} ${i.instrument} ${i.order_type}${at}${i.reduce_only ? " (reduce-only)" : ""}`;
  }

  function renderDecision(d) {
    const box = $("why-decision-body");
    if (!d) {
      box.replaceChildren(node("p", "The trace has no decision for this order.", "empty"));
      return;
    }
    const source = node("span", d.source === "flatten" ? "flatten (the loop, reducing)" : d.source, `source ${d.source}`);
    const head = node("p");
    head.append("Source: ", source, ` · step ${d.step} · ${utc(d.ts)}`);
    box.replaceChildren(
      head,
      facts([
        ["Intent", `${intentLine(d.intent)} (${d.intent_index + 1} of ${d.intents})`],
        ["Intent reason", d.intent && d.intent.reason],
        ["Rationale", d.rationale],
      ]),
    );
  }

  function renderAnswers(answers, decision) {
    const box = $("why-answers-body");
    if (!answers.length) {
      const why = decision && decision.source === "flatten" ? "A flatten asks no model." : "No LLM call was recorded in that step.";
      box.replaceChildren(node("p", why, "empty"));
      return;
    }
    box.replaceChildren(
      ...answers.map((a, i) => {
        const item = node("div", null, "answer");
        item.append(
          node("p", `${i + 1}. ${a.model || "?"} · ${a.tier || a.kind} · phase ${a.phase || "–"} · ${utc(a.ts)}`, "answer-head"),
          facts([
            ["Tokens", a.tokens_in !== undefined ? `${a.tokens_in} in / ${a.tokens_out} out` : null],
            ["Cost", a.usd !== undefined ? `$${Number(a.usd).toFixed(6)}` : null],
            ["Finish", a.finish_reason],
            ["Tool calls", a.tool_calls && a.tool_calls.length ? a.tool_calls.map((c) => c.name).join(", ") : null],
            ["Reason", a.reason],
          ]),
        );
        const text = String(a.text || "");
        const pre = node("pre", text.length > ANSWER_CHARS ? `${text.slice(0, ANSWER_CHARS)}…` : text, "answer-text");
        item.append(pre);
        return item;
      }),
    );
  }

  function renderVerdict(v, approval) {
    const status = node("span", v.status, `verdict ${v.status}`);
    const head = node("p");
    head.append("Verdict: ", status);
    const parts = [head, facts([["Order", intentLine(v)], ["Cap", v.cap], ["Limit", v.limit], ["Observed", v.observed], ["Reason", v.reason]])];
    if (approval) {
      parts.push(
        node(
          "p",
          `Approved by ${approval.decided_by || "?"} (asked at step ${approval.asked_at_step ?? "?"}, approval ${approval.approval_id})`,
          "approval",
        ),
      );
    }
    $("why-verdict-body").replaceChildren(...parts);
  }

  function renderOrders(lines) {
    const tbody = $("why-orders").tBodies[0];
    window.Bastion.rows(tbody, lines, (o) => [
      utc(o.ts),
      o.kind.replace("order_", ""),
      o.step ?? "",
      o.order_state || o.reason || "",
      o.order_id || "",
      o.filled_amount !== undefined ? `${o.filled_amount} of ${o.amount}` : "",
    ]);
  }

  function showMessage(text) {
    $("why-message").textContent = text;
    $("why-message").hidden = false;
    $("why-result").hidden = true;
  }

  async function explain(label) {
    const wanted = String(label || "").trim();
    if (!wanted) {
      showMessage("Enter an order's label, such as 20261203T084500-1a2b3c4d-12-0.");
      return;
    }
    $("why-label").value = wanted;
    $("why-message").hidden = true;
    try {
      const why = await api(`/api/orders/${encodeURIComponent(wanted)}/why`);
      $("why-title").textContent = `Order ${why.label} · run ${why.run_id} · step ${why.step} · ${why.agent}`;
      renderDecision(why.decision);
      renderAnswers(why.answers, why.decision);
      renderVerdict(why.verdict, why.approval);
      renderOrders(why.orders);
      $("why-result").hidden = false;
    } catch (err) {
      showMessage(`No explanation: ${err.message}`);
    }
  }

  $("why-run").addEventListener("click", () => explain($("why-label").value));
  $("why-label").addEventListener("keydown", (event) => {
    if (event.key === "Enter") explain($("why-label").value);
  });
  // A label in the Overview's open orders: open this tab on it.
  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target.closest("[data-why-label]") : null;
    if (!target) return;
    window.location.hash = "why";
    explain(target.dataset.whyLabel);
  });
})();
