// dicomstation UI, Pipelines page: jobs of the ledger with live per-item states, resume,
// and the Dask dashboard link of a running cluster. Plain JavaScript; text is inserted
// with textContent only (never innerHTML).
"use strict";

(() => {
  const pipes = {job: null, timer: null};
  const q = (sel, root = document) => root.querySelector(sel);

  function node(tag, text = "", props = {}) {
    const made = document.createElement(tag);
    if (text !== "") made.textContent = text;
    Object.assign(made, props);
    return made;
  }

  async function getJson(path, method = "GET") {
    const response = await fetch(path, {method});
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(`${response.status}: ${detail}`);
    }
    return response.json();
  }

  function counts(job) {
    return Object.entries(job.counts).map(([state, n]) => `${n} ${state}`).join(", ") || "no items";
  }

  function renderCluster(cluster) {
    const box = q("#pipelines-cluster");
    box.replaceChildren();
    if (!cluster) { box.textContent = "no Dask cluster running"; return; }
    box.append(`Dask cluster ${cluster.target}: `);
    if (cluster.dashboard) {
      box.append(node("a", "dashboard", {href: cluster.dashboard, target: "_blank", rel: "noopener"}));
    } else {
      box.append("no dashboard");
    }
  }

  function jobRow(job) {
    const row = node("tr", "", {id: `pipeline-${job.job}`});
    row.dataset.job = job.job;
    row.classList.toggle("current", job.job === pipes.job);
    const resume = node("button", "Resume", {className: "resume"});
    resume.disabled = Object.keys(job.counts).every(s => s === "done" || s === "skipped");
    resume.addEventListener("click", async event => {
      event.stopPropagation();
      try { await getJson(`/api/jobs/${encodeURIComponent(job.job)}/resume`, "POST"); }
      catch (e) { q("#pipelines-message").textContent = e.message; }
      refresh();
    });
    const cells = [job.name, job.job.slice(0, 12), counts(job)].map(t => node("td", t));
    const actions = node("td");
    actions.append(resume);
    row.append(...cells, actions);
    row.addEventListener("click", () => { pipes.job = job.job; refresh(); });
    return row;
  }

  function itemRow(item) {
    const row = node("tr");
    row.dataset.state = item.state;
    const steps = item.steps.map(s => `${s.step}:${s.state}`).join(" ");
    row.append(node("td", item.item), node("td", item.state, {className: "state"}),
               node("td", item.step), node("td", String(item.attempts)), node("td", steps),
               node("td", item.error));
    return row;
  }

  async function refresh() {
    if (!q("#pipelines").classList.contains("active")) return;
    try {
      const listing = await getJson("/api/pipelines");
      renderCluster(listing.cluster);
      q("#pipeline-table tbody").replaceChildren(...listing.jobs.map(jobRow));
      if (!pipes.job && listing.jobs.length) pipes.job = listing.jobs[0].job;
      if (pipes.job) {
        const job = await getJson(`/api/pipelines/${encodeURIComponent(pipes.job)}`);
        q("#pipeline-title").textContent = `${job.name} (${counts(job)})`;
        q("#pipeline-items tbody").replaceChildren(...job.items.map(itemRow));
      }
      q("#pipelines-message").textContent = "";
    } catch (e) {
      q("#pipelines-message").textContent = e.message;
    }
  }

  q("#tab-pipelines").addEventListener("click", () => {
    refresh();
    if (pipes.timer === null) pipes.timer = setInterval(refresh, 1000);
  });
})();
