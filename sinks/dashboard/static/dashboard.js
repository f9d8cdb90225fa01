/* leadstream dashboard: draws the query API's /reports JSON, refreshes without reloading.
 *
 * Every figure comes from a report as it is (cells carry the JSON value in data-value);
 * the only arithmetic here is what the page adds on top: KPI totals over the sources
 * rows, the previous period's totals, and the win-rate interval (Wilson, 95%).
 */
(function () {
  "use strict";

  const MODELS = ["first_touch", "last_touch", "linear", "u_shaped", "w_shaped", "full_path", "time_decay",
    "j_shaped", "inverse_j"];
  const FAST_MS = 2000;   // sources, KPIs, freshness
  const SLOW_EVERY = 5;   // the other reports every 5th refresh
  const PALETTE = ["#2f6fde", "#13795b", "#f79009", "#b42318", "#7a5af8", "#0e9384", "#c11574", "#667085",
    "#4e5ba6", "#9e7700"];
  const state = { data: {}, charts: {}, refreshes: 0, errors: [], sort: { key: "leads", desc: true }, busy: false };
  window.leadstreamDashboard = state;

  // ---- the URL holds the controls; a #token=... fragment is kept for this tab only ----
  function readControls() {
    const url = new URL(window.location.href);
    const fragment = new URLSearchParams(url.hash.slice(1));
    if (fragment.get("token")) {
      sessionStorage.setItem("leadstream-token", fragment.get("token"));
      history.replaceState(null, "", url.pathname + url.search);
    }
    const q = url.searchParams;
    return { since: q.get("since") || "", until: q.get("until") || "", by: q.get("by") || "channel",
      model: q.get("model") || "first_touch" };
  }

  function writeControls(c) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(c)) if (v) q.set(k, v);
    history.replaceState(null, "", window.location.pathname + "?" + q.toString());
  }

  let controls = readControls();
  const form = document.getElementById("controls");
  for (const [k, v] of Object.entries(controls)) form.elements[k].value = v;
  form.addEventListener("change", function () {
    controls = { since: form.elements.since.value, until: form.elements.until.value, by: form.elements.by.value,
      model: form.elements.model.value };
    writeControls(controls);
    refresh(true);
  });

  // ---- fetching ----
  async function api(path, options) {
    const headers = Object.assign({}, (options || {}).headers);
    const token = sessionStorage.getItem("leadstream-token");
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(path, Object.assign({}, options, { headers: headers, cache: "no-store" }));
    if (response.status === 401) throw new Error("the query API needs its token: open this page as /dashboard#token=...");
    if (!response.ok) throw new Error(path + ": " + response.status + " " + (await response.text()).slice(0, 200));
    return response.json();
  }

  /** One gauge of a Prometheus text exposition (the sink's /metrics), or null. */
  function gauge(text, name) {
    if (!text) return null;
    const line = text.split("\n").find((l) => l.startsWith(name + " "));
    return line ? Number(line.slice(name.length + 1)) : null;
  }

  async function metricsText() {
    const headers = {};
    const token = sessionStorage.getItem("leadstream-token");
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch("/metrics", { headers: headers, cache: "no-store" });
    return response.ok ? response.text() : null;
  }

  function reportPath(name, extra) {
    const q = new URLSearchParams({ by: controls.by });
    if (controls.since) q.set("since", controls.since);
    if (controls.until) q.set("until", controls.until);
    for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
    return "/reports/" + name + "?" + q.toString();
  }

  function previousPeriod() {
    if (!controls.since || !controls.until) return null;
    const since = Date.parse(controls.since + "T00:00:00Z");
    const until = Date.parse(controls.until + "T00:00:00Z");
    if (!(until > since)) return null;
    const day = (ms) => new Date(ms).toISOString().slice(0, 10);
    return { since: day(since - (until - since)), until: day(since) };
  }

  // ---- formatting ----
  const integer = (v) => (v === null || v === undefined ? "—" : Number(v).toLocaleString("en-US"));
  const money = (v) => (v === null || v === undefined ? "—"
    : Number(v).toLocaleString("en-US", { minimumFractionDigits: 0, maximumFractionDigits: 2 }));
  const percent = (v) => (v === null || v === undefined ? "—" : (100 * v).toFixed(1) + "%");
  const days = (v) => (v === null || v === undefined ? "—" : Number(v).toFixed(1));
  const FORMAT = { leads: integer, deals: integer, won: integer, lost: integer, open: integer, win_rate: percent,
    avg_deal_size: money, revenue: money, pipeline: money, median_days_to_close: days, spend: money,
    roi: percent };

  function totals(rows) {
    const sum = (k) => rows.reduce((a, r) => a + (Number(r[k]) || 0), 0);
    const won = sum("won");
    const lost = sum("lost");
    return { leads: sum("leads"), won: won, revenue: sum("revenue"), win_rate: won + lost ? won / (won + lost) : null };
  }

  /** Wilson score interval of won/(won+lost) at 95%: [low, high], or null without closed deals. */
  function wilson(won, lost) {
    const n = won + lost;
    if (!n) return null;
    const z = 1.96;
    const p = won / n;
    const centre = (p + (z * z) / (2 * n)) / (1 + (z * z) / n);
    const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / (1 + (z * z) / n);
    return [Math.max(0, centre - half), Math.min(1, centre + half)];
  }

  function cell(tag, text, key, value) {
    const el = document.createElement(tag);
    el.textContent = text;
    if (key) el.dataset.key = key;
    if (value !== undefined) el.dataset.value = value === null ? "null" : String(value);
    return el;
  }

  function fillTable(id, rows, columns) {
    const body = document.querySelector("#" + id + " tbody");
    body.replaceChildren(...rows.map(function (r) {
      const tr = document.createElement("tr");
      for (const [key, fmt] of columns) tr.appendChild(cell("td", fmt(r[key]), key, r[key]));
      return tr;
    }));
  }

  // ---- drawing ----
  function chart(id, config) {
    const existing = state.charts[id];
    if (existing) {
      existing.data = config.data;
      existing.update("none");
      return existing;
    }
    config.options = Object.assign({ responsive: true, animation: false, maintainAspectRatio: true }, config.options);
    state.charts[id] = new Chart(document.getElementById(id), config);
    return state.charts[id];
  }

  function drawKpis(now, before) {
    const fmt = { leads: integer, won: integer, revenue: money, win_rate: percent };
    for (const key of Object.keys(fmt)) {
      const box = document.querySelector('[data-kpi="' + key + '"]');
      const value = box.querySelector(".value");
      value.textContent = fmt[key](now[key]);
      value.dataset.value = now[key] === null ? "null" : String(now[key]);
      const delta = box.querySelector(".delta");
      delta.className = "delta";
      if (!before) {
        delta.textContent = controls.since || controls.until ? "" : "all time";
      } else if (before[key] === null || now[key] === null || !before[key]) {
        delta.textContent = "previous period: " + fmt[key](before[key]);
      } else {
        const change = (now[key] - before[key]) / Math.abs(before[key]);
        delta.textContent = (change >= 0 ? "+" : "") + (100 * change).toFixed(1) + "% vs previous period";
        delta.classList.add(change >= 0 ? "up" : "down");
      }
    }
  }

  function drawScorecard(rows) {
    const { key, desc } = state.sort;
    const sorted = rows.slice().sort(function (a, b) {
      const x = a[key];
      const y = b[key];
      if (x === y) return String(a.lead_source).localeCompare(String(b.lead_source));
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      const order = typeof x === "string" ? x.localeCompare(y) : x - y;
      return desc ? -order : order;
    });
    const body = document.querySelector("#scorecard tbody");
    body.replaceChildren(...sorted.map(function (r) {
      const tr = document.createElement("tr");
      tr.dataset.source = r.lead_source;
      tr.appendChild(cell("td", r.lead_source, "lead_source", r.lead_source));
      for (const k of Object.keys(FORMAT)) {
        if (k === "open") continue;
        tr.appendChild(cell("td", FORMAT[k](r[k]), k, r[k]));
      }
      return tr;
    }));
    for (const th of document.querySelectorAll("#scorecard th")) {
      th.classList.toggle("sorted-asc", th.dataset.key === key && !desc);
      th.classList.toggle("sorted-desc", th.dataset.key === key && desc);
    }
  }

  document.querySelector("#scorecard thead").addEventListener("click", function (e) {
    const key = e.target.dataset.key;
    if (!key) return;
    state.sort = { key: key, desc: state.sort.key === key ? !state.sort.desc : key !== "lead_source" };
    if (state.data.sources) drawScorecard(state.data.sources);
  });

  function drawWinRate(rows) {
    const closed = rows.filter((r) => (r.won || 0) + (r.lost || 0) > 0);
    chart("chart-winrate", {
      type: "bar",
      data: {
        labels: closed.map((r) => r.lead_source),
        datasets: [
          { label: "95% interval", data: closed.map((r) => wilson(r.won, r.lost)), backgroundColor: "rgba(47,111,222,0.25)" },
          { label: "win rate", type: "line", showLine: false, pointRadius: 5, data: closed.map((r) => r.win_rate),
            backgroundColor: "#2f6fde", borderColor: "#2f6fde" },
        ],
      },
      options: { indexAxis: "y", scales: { x: { min: 0, max: 1, ticks: { callback: (v) => Math.round(v * 100) + "%" } } } },
    });
  }

  function drawQuarterly(rows) {
    const quarters = [...new Set(rows.map((r) => r.quarter))].sort();
    const sources = [...new Set(rows.map((r) => r.lead_source))].sort();
    chart("chart-quarterly", {
      type: "bar",
      data: {
        labels: quarters,
        datasets: sources.map((s, i) => ({
          label: s, backgroundColor: PALETTE[i % PALETTE.length],
          data: quarters.map((q) => { const r = rows.find((x) => x.quarter === q && x.lead_source === s); return r ? r.revenue : 0; }),
        })),
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true } } },
    });
  }

  function drawFunnel(rows) {
    const top = rows.slice().sort((a, b) => b.leads - a.leads).slice(0, 8);
    const stages = ["leads", "mql", "sql", "opportunity", "customer"];
    chart("chart-funnel", {
      type: "bar",
      data: {
        labels: stages,
        datasets: top.map((r, i) => ({ label: r.lead_source, backgroundColor: PALETTE[i % PALETTE.length],
          data: stages.map((s) => r[s]) })),
      },
    });
    fillTable("funnel-days", top, [["lead_source", String], ["median_days_in_lead", days], ["median_days_in_mql", days],
      ["median_days_in_sql", days], ["median_days_in_opportunity", days]]);
  }

  function drawAttribution(byModel) {
    const channels = [...new Set(MODELS.flatMap((m) => (byModel[m] || []).map((r) => r.channel)))].sort();
    chart("chart-attribution", {
      type: "bar",
      data: {
        labels: channels,
        datasets: MODELS.map((m, i) => ({
          label: m, backgroundColor: m === controls.model ? "#1d2430" : PALETTE[i % PALETTE.length],
          data: channels.map((c) => { const r = (byModel[m] || []).find((x) => x.channel === c); return r ? r.deal_credit : 0; }),
        })),
      },
    });
  }

  /** The share of new leads (by first-touch quarter) whose lead channel is Unknown or Direct. */
  function unknownDirectShare(quarterlyByChannel) {
    const quarters = [...new Set(quarterlyByChannel.map((r) => r.quarter))].sort();
    return quarters.map(function (q) {
      const rows = quarterlyByChannel.filter((r) => r.quarter === q);
      const leads = rows.reduce((a, r) => a + r.leads, 0);
      const bad = rows.filter((r) => r.lead_source === "Unknown" || r.lead_source === "Direct")
        .reduce((a, r) => a + r.leads, 0);
      return { quarter: q, leads: leads, share: leads ? bad / leads : null };
    }).filter((r) => r.leads > 0);
  }

  function drawUnknownDirect(points) {
    chart("chart-unknown-direct", {
      type: "line",
      data: {
        labels: points.map((p) => p.quarter),
        datasets: [{ label: "Unknown or Direct share of new leads", data: points.map((p) => p.share),
          borderColor: "#b42318", backgroundColor: "#b42318" }],
      },
      options: { scales: { y: { min: 0, ticks: { callback: (v) => Math.round(v * 100) + "%" } } } },
    });
  }

  function drawRepSources(rows) {
    const reps = [...new Set(rows.map((r) => r.owner))].sort();
    const sources = [...new Set(rows.map((r) => r.contact_source))].sort();
    chart("chart-rep-sources", {
      type: "bar",
      data: {
        labels: reps,
        datasets: sources.map((s, i) => ({
          label: s, backgroundColor: PALETTE[i % PALETTE.length],
          data: reps.map((o) => { const r = rows.find((x) => x.owner === o && x.contact_source === s); return r ? r.contacts : 0; }),
        })),
      },
      options: { indexAxis: "y", scales: { x: { stacked: true }, y: { stacked: true } } },
    });
  }

  function drawContactSources(rows) {
    chart("chart-contact-sources", {
      type: "bar",
      data: {
        labels: rows.map((r) => r.contact_source),
        datasets: [
          { label: "contacts", data: rows.map((r) => r.contacts), backgroundColor: "#2f6fde" },
          { label: "won deals", data: rows.map((r) => r.won), backgroundColor: "#13795b" },
        ],
      },
    });
  }

  function drawAlerts(answer) {
    const body = document.querySelector("#q-alerts tbody");
    if (!answer) {
      body.replaceChildren(cell("td", "not evaluated here"));
      return;
    }
    const rows = answer.alerts.map(function (a) {
      const tr = document.createElement("tr");
      tr.dataset.rule = a.rule;
      tr.append(cell("td", a.rule), cell("td", a.subject), cell("td", a.message));
      return tr;
    });
    body.replaceChildren(...(rows.length ? rows : [cell("td", "none firing")]));
  }

  function drawQuality(quality, health, newest) {
    const contacts = quality.contacts || {};
    const share = document.getElementById("q-share");
    share.textContent = percent(contacts.unknown_or_direct_share);
    share.dataset.value = String(contacts.unknown_or_direct_share);
    document.getElementById("q-contacts").textContent = integer(contacts.contacts);
    const age = newest ? Math.max(0, (Date.now() - newest) / 1000) : null;
    document.getElementById("q-newest").textContent = age === null ? "no events yet"
      : new Date(newest).toISOString().replace("T", " ").slice(0, 19) + " UTC (" + humanAge(age) + " ago)";
    const sink = (health || {}).sink;
    const flushed = gauge(state.data.metrics, "leadstream_sink_last_flush_timestamp_seconds");
    const insert = gauge(state.data.metrics, "leadstream_sink_insert_seconds");
    const lastBatch = flushed ? ", last batch committed " + humanAge(Math.max(0, Date.now() / 1000 - flushed))
      + " ago" + (insert !== null ? " (inserts " + insert.toFixed(2) + " s)" : "") : "";
    document.getElementById("q-sink").textContent = !health || health.status !== "ok" ? "down"
      : !sink ? "not observed from here (leadstream dashboard)"
      : (sink.paused ? "paused (engine unreachable, retrying)" : "ingesting") + ", " + integer(sink.messages)
        + " records read" + lastBatch;
    fillTable("q-dead-letters", quality.dead_letters || [], [["stage", String], ["reason", String], ["count", integer]]);
    fillTable("q-unclassified", quality.unclassified_pairs || [], [["utm_source", String], ["utm_medium", String],
      ["touches", integer]]);
    fillTable("q-coverage", quality.taxonomy_coverage || [], [["taxonomy_version", String], ["touches", integer],
      ["classified", integer], ["coverage", percent]]);
  }

  function humanAge(seconds) {
    if (seconds < 120) return Math.round(seconds) + " s";
    if (seconds < 7200) return Math.round(seconds / 60) + " min";
    if (seconds < 172800) return Math.round(seconds / 3600) + " h";
    return Math.round(seconds / 86400) + " days";
  }

  async function newestEvent(database) {
    const body = JSON.stringify({ sql: "SELECT toUnixTimestamp64Milli(max(received_at)) AS newest, count() AS n FROM "
      + database + ".touches" });
    const answer = await api("/sql", { method: "POST", body: body, headers: { "Content-Type": "application/json" } });
    const [newest, n] = answer.rows[0];
    return n ? Number(newest) : null;
  }

  // ---- the refresh loop ----
  async function refresh(everything) {
    if (state.busy) return;
    state.busy = true;
    const status = document.getElementById("status");
    try {
      const prev = previousPeriod();
      const fast = [api(reportPath("sources")), api("/healthz").catch(() => null), api(reportPath("roi"))];
      if (prev) fast.push(api("/reports/sources?" + new URLSearchParams({ by: controls.by, since: prev.since,
        until: prev.until })));
      const [sources, health, roi, before] = await Promise.all(fast);
      // spend and ROI where spend exists (the roi report, same level and window)
      const spendOf = Object.fromEntries(roi.filter((r) => r.spend > 0).map((r) => [r.lead_source, r]));
      for (const row of sources) {
        const r = spendOf[row.lead_source];
        row.spend = r ? r.spend : null;
        row.roi = r ? r.roi : null;
      }
      state.data.roi = roi;
      state.data.sources = sources;
      state.data.health = health;
      drawKpis(totals(sources), before ? totals(before) : null);
      drawScorecard(sources);
      drawWinRate(sources);
      if (everything || state.refreshes % SLOW_EVERY === 0) {
        const [quarterly, funnel, contactSources, quality, newest, alerts, leadScores, byChannel, repSources,
          ...attribution] =
          await Promise.all([
          api(reportPath("quarterly")), api(reportPath("funnel")), api(reportPath("contact-sources")),
          api(reportPath("quality")), newestEvent((health && health.database) || "leadstream").catch(() => null),
          api("/alerts").catch(() => null), api(reportPath("lead-scores", { top: 10 })),
          api(reportPath("quarterly", { by: "channel" })), api(reportPath("rep-sources")),
          ...MODELS.map((m) => api(reportPath("attribution", { model: m }))),
        ]);
        // the sink's own counters, when a sink serves this page (leadstream dashboard has none)
        state.data.metrics = health && health.sink ? await metricsText().catch(() => null) : null;
        const byModel = Object.fromEntries(MODELS.map((m, i) => [m, attribution[i]]));
        Object.assign(state.data, { quarterly: quarterly, funnel: funnel, contactSources: contactSources,
          quality: quality, attribution: byModel, newest: newest, alerts: alerts, leadScores: leadScores });
        drawAlerts(alerts);
        state.data.unknownDirect = unknownDirectShare(byChannel);
        drawUnknownDirect(state.data.unknownDirect);
        fillTable("lead-scores", leadScores, [["contact_id", String], ["lead_source", String], ["score", days],
          ["q_s", percent], ["p_s", percent], ["m", (v) => Number(v).toFixed(2)]]);
        drawQuarterly(quarterly);
        drawFunnel(funnel);
        drawAttribution(byModel);
        drawContactSources(contactSources);
        state.data.repSources = repSources;
        drawRepSources(repSources);
        drawQuality(quality, health, newest);
      }
      state.refreshes += 1;
      state.refreshedAt = Date.now();
      status.className = "";
      status.textContent = "updated " + new Date().toLocaleTimeString();
    } catch (err) {
      state.errors.push(String(err && err.message ? err.message : err));
      status.className = "error";
      status.textContent = String(err && err.message ? err.message : err);
    } finally {
      state.busy = false;
    }
  }

  refresh(true);
  setInterval(refresh, FAST_MS);
})();
