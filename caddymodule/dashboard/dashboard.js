// hookrelay status page: polls the handler's JSON and renders it. Every
// value is inserted as text, never as HTML.
"use strict";

(function () {
  const REFRESH_MS = 2000;
  const stateURL = "?format=json";
  let timer = null;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function relative(iso) {
    if (!iso) return "—";
    const s = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
    const abs = Math.abs(s);
    if (abs < 1) return "just now";
    let text;
    if (abs < 60) text = abs + "s";
    else if (abs < 3600) text = Math.floor(abs / 60) + "m " + (abs % 60) + "s";
    else if (abs < 86400) text = Math.floor(abs / 3600) + "h " + Math.floor((abs % 3600) / 60) + "m";
    else text = Math.floor(abs / 86400) + "d " + Math.floor((abs % 86400) / 3600) + "h";
    return s >= 0 ? "in " + text : text + " ago";
  }

  // outcomeText is a status and its error, without saying the status twice:
  // [the status line, the error line or null].
  function outcomeText(status, error) {
    const line = status ? "HTTP " + status : "no answer";
    if (!error) return [line, null];
    if (status && error.startsWith(line)) return [error, null];
    return [line, error];
  }

  function lastAttempt(d) {
    if (!d.last_outcome) return el("span", { class: "muted" }, "none yet");
    const [line, error] = outcomeText(d.last_status, d.last_outcome === "delivered" ? "" : d.last_error);
    return el("div", {},
      el("span", { class: "dot " + d.last_outcome, title: d.last_outcome }), " ", line, " ",
      el("span", { class: "muted" }, relative(d.last_attempt)),
      error ? el("div", { class: "error" }, error) : null);
  }

  function counts(r) {
    return el("div", { class: "counts" },
      el("span", { class: "delivered", title: "delivered" }, "✓ " + r.delivered),
      el("span", { class: "retry", title: "retried" }, "↻ " + r.retry),
      el("span", { class: "dead_letter", title: "dead-lettered" }, "✗ " + r.dead_letter));
  }

  function dots(attempts) {
    const box = el("div", { class: "dots" });
    for (const a of (attempts || []).slice().reverse()) {
      const title = a.outcome + " · " + (a.status ? "HTTP " + a.status : "no answer") + " · " + new Date(a.at).toLocaleTimeString();
      box.append(el("span", { class: "dot " + a.outcome, title: title }));
    }
    return box;
  }

  function blocked(d) {
    if (!d.ordered) return el("span", { class: "muted", title: "unordered: events are delivered in parallel" }, "unordered");
    if (!d.blocked_lanes) return el("span", { class: "muted", title: d.lanes + " lanes, none blocked" }, "0 of " + d.lanes);
    return el("div", {},
      el("span", { class: "num blocked-lanes" }, d.blocked_lanes + " of " + d.lanes), " ",
      el("span", { class: "muted", title: "the longest-blocked lane's key, and since when its first event fails" },
        "oldest: ", el("code", {}, d.oldest_blocked_key || "(no key)"), " " + relative(d.oldest_blocked_since)));
  }

  function renderDestinations(list) {
    const body = document.querySelector("#destinations tbody");
    body.replaceChildren(...list.map(function (d) {
      return el("tr", { id: "dest-" + d.name, "data-destination": d.name },
        el("th", { scope: "row" }, d.name),
        el("td", {}, el("span", { class: "badge " + d.state, title: d.gone
          ? "It answered 410 Gone" + (d.gone_since ? " at " + new Date(d.gone_since).toLocaleString() : "") + ": paused, its events wait until it is resumed (caddy hookrelay resume " + d.name + ")"
          : d.state }, d.state)),
        el("td", { class: "num pending" }, d.pending),
        el("td", { class: "num in-flight" }, d.in_flight),
        el("td", { class: "num in-retry" }, d.in_retry),
        el("td", { class: "blocked" }, blocked(d)),
        el("td", { class: "next-retry" }, relative(d.next_attempt)),
        el("td", { class: "last" }, lastAttempt(d)),
        el("td", {}, counts(d.recent)),
        el("td", {}, dots(d.recent_attempts)),
        el("td", { class: "num dead-letters" }, d.dead_letters));
    }));
    document.getElementById("empty").hidden = list.length > 0;
  }

  function renderDeadLetters(list, byDest) {
    const box = document.getElementById("dead-letters");
    const parts = [];
    for (const d of list) {
      const dls = byDest[d.name] || [];
      if (!d.dead_letters) continue;
      const all = el("button", { class: "replay-all", type: "button", "data-destination": d.name }, "Replay all " + d.dead_letters);
      all.addEventListener("click", function () { replay({ destination: d.name }, all); });
      const rows = dls.map(function (dl) {
        const b = el("button", { class: "replay", type: "button", "data-id": String(dl.id) }, "Replay");
        b.addEventListener("click", function () { replay({ ids: [dl.id] }, b); });
        return el("tr", { id: "dl-" + dl.id },
          el("td", {}, el("code", {}, dl.event_id)),
          el("td", {}, dl.topic),
          el("td", { class: "num" }, dl.attempts),
          el("td", {}, relative(dl.first_seen)),
          el("td", {}, relative(dl.dead_at)),
          el("td", {}, ...(function () {
            const [line, error] = outcomeText(dl.last_status, dl.last_error);
            return [line, error ? el("div", { class: "error" }, error) : null];
          })()),
          el("td", {}, dl.reason),
          el("td", {}, b));
      });
      const more = d.dead_letters > dls.length ? el("p", { class: "muted" }, "Showing the oldest " + dls.length + " of " + d.dead_letters + ".") : null;
      parts.push(el("section", { id: "dead-" + d.name },
        el("h3", {}, d.name, all),
        el("table", {},
          el("thead", {}, el("tr", {},
            ...["Event", "Topic", "Attempts", "First seen", "Dead", "Last status", "Reason", ""].map(function (h) { return el("th", { scope: "col" }, h); }))),
          el("tbody", {}, ...rows)),
        more));
    }
    if (parts.length === 0) parts.push(el("p", { class: "muted" }, "None."));
    box.replaceChildren(...parts);
  }

  // renderWebhooks shows the registered webhooks, or hides the section
  // when the registry is off.
  function renderWebhooks(w) {
    const box = document.getElementById("webhooks");
    box.hidden = !w;
    if (!w) return;
    document.getElementById("webhooks-summary").textContent =
      w.total + " registered webhook" + (w.total === 1 ? "" : "s") + " of " + w.tenants_total +
      " tenant" + (w.tenants_total === 1 ? "" : "s") + ", " + w.broken + " broken.";
    document.querySelector("#webhook-tenants tbody").replaceChildren(...w.tenants.map(function (t) {
      return el("tr", {}, el("td", {}, t.tenant), el("td", { class: "num" }, t.webhooks));
    }));
    const tmore = document.getElementById("webhook-tenants-more");
    tmore.hidden = w.tenants_total <= w.tenants.length;
    tmore.textContent = "Showing the " + w.tenants.length + " tenants with the most webhooks of " + w.tenants_total + ".";
    document.querySelector("#webhook-list tbody").replaceChildren(...w.webhooks.map(function (h) {
      return el("tr", { id: "webhook-" + h.id, "data-destination": h.destination },
        el("td", {}, el("code", {}, String(h.id))),
        el("td", {}, h.tenant),
        el("td", {}, h.topic),
        el("td", {}, h.host),
        el("td", {}, el("span", { class: "badge " + h.state, title: h.broken || h.state }, h.state),
          h.broken ? el("div", { class: "error" }, h.broken) : null),
        el("td", { class: "num queued" }, h.queued));
    }));
    const more = document.getElementById("webhooks-more");
    more.hidden = w.total <= w.webhooks.length;
    more.textContent = "Showing the first " + w.webhooks.length + " of " + w.total + " by id; caddy hookrelay webhooks list shows them all.";
  }

  function say(text, failed) {
    const m = document.getElementById("message");
    m.textContent = text;
    m.className = failed ? "failed" : "";
    m.hidden = false;
  }

  async function replay(what, button) {
    button.disabled = true;
    try {
      const resp = await fetch(location.pathname, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(what),
        credentials: "same-origin",
      });
      const body = await resp.json().catch(function () { return {}; });
      if (!resp.ok) {
        say("Replay failed: " + (body.error || resp.status), true);
      } else {
        say("Replayed " + body.replayed + " dead letter" + (body.replayed === 1 ? "" : "s") + ".", false);
      }
    } catch (e) {
      say("Replay failed: " + e, true);
    } finally {
      button.disabled = false;
      refresh();
    }
  }

  async function refresh() {
    clearTimeout(timer);
    const updated = document.getElementById("updated");
    try {
      const resp = await fetch(stateURL, { cache: "no-store", credentials: "same-origin" });
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      const state = await resp.json();
      renderDestinations(state.destinations || []);
      renderDeadLetters(state.destinations || [], state.dead_letters || {});
      renderWebhooks(state.webhooks);
      updated.textContent = "Updated " + new Date(state.generated_at).toLocaleTimeString();
      updated.className = "";
    } catch (e) {
      updated.textContent = "Cannot refresh: " + e.message;
      updated.className = "stale";
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  refresh();
})();
