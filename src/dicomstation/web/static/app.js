// dicomstation UI: plain JavaScript, no framework, no CDN. Data is inserted with
// textContent only (never innerHTML), so DICOM values cannot inject markup.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const state = {
  server: "local", offset: 0, limit: 25, more: false, filters: {},
  selected: new Map(),         // study uid -> Set of series uids (empty: whole study)
  volume: null, seeds: [], exported: [], servers: [],
};

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node[k] = v;
  }
  for (const child of children) node.append(child);
  return node;
}

function status(text, error = false) {
  const box = $("#status");
  box.textContent = text;
  box.className = error ? "error" : "";
}

async function api(path, options = {}) {
  const {quiet, ...init} = options;  // quiet: the caller reports errors itself
  const response = await fetch(path, {
    headers: init.body ? {"Content-Type": "application/json"} : {}, ...init,
  });
  if (response.status === 401) {
    status("not signed in: open the URL with ?token= that dicomstation ui printed", true);
    throw new Error("authentication required");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
    if (!quiet) status(`${response.status}: ${detail}`, true);
    throw new Error(`${response.status}: ${detail}`);
  }
  return response.json();
}

const post = (path, body, method = "POST") => api(path, {method, body: JSON.stringify(body)});
const enc = encodeURIComponent;

// ---------------------------------------------------------------- tabs
function showTab(name) {
  document.querySelectorAll(".tab").forEach(t => t.classList.toggle("active", t.dataset.tab === name));
  document.querySelectorAll(".panel").forEach(p => p.classList.toggle("active", p.id === name));
  if (name === "local") queryLocal();
  if (name === "settings") loadSettings();
  if (name === "browse" || name === "local") placeMetadata(name);
}
document.querySelectorAll(".tab").forEach(t => t.addEventListener("click", () => showTab(t.dataset.tab)));

// ---------------------------------------------------------------- servers
async function loadServers() {
  state.servers = await api("/api/servers");
  for (const select of [$("#server-select"), $("#send-server")]) {
    const current = select.value;
    select.replaceChildren(...state.servers.map(s => el("option", {value: s.name, text: `${s.name} (${s.protocol})`})));
    if (current) select.value = current;
  }
  const preferred = state.servers.find(s => s.name !== "local");
  if (!$("#server-select").dataset.touched && preferred) $("#server-select").value = preferred.name;
  updateSendProtocol();
}
$("#server-select").addEventListener("change", e => { e.target.dataset.touched = "1"; });

// ---------------------------------------------------------------- browse
function studyFilters(form) {
  const data = new FormData(form);
  const filters = {};
  for (const key of ["PatientName", "PatientID", "ModalitiesInStudy", "StudyDescription", "AccessionNumber"]) {
    const value = (data.get(key) || "").trim();
    if (value) filters[key] = value;
  }
  const from = (data.get("date_from") || "").replaceAll("-", "");
  const to = (data.get("date_to") || "").replaceAll("-", "");
  if (from || to) filters.StudyDate = `${from}-${to}`;
  return filters;
}

async function queryStudies() {
  const params = new URLSearchParams({...state.filters, limit: state.limit, offset: state.offset});
  const server = state.server;
  status(`querying ${server}…`);
  const seq = (state.querySeq = (state.querySeq || 0) + 1);
  clearBrowse();  // never show one server's rows under another's name
  let page;
  try {
    page = await api(`/api/servers/${enc(server)}/studies?${params}`, {quiet: true});
  } catch (e) {
    if (seq === state.querySeq) status(`${server}: ${e.message}`, true);
    return;
  }
  if (seq !== state.querySeq) return;  // a newer query was started meanwhile
  state.more = page.more;
  state.items = page.items;
  renderStudies(page.items);
  $("#page-label").textContent = page.items.length
    ? `${state.offset + 1}–${state.offset + page.items.length}` : "no studies";
  $("#prev-page").disabled = state.offset === 0;
  $("#next-page").disabled = !state.more;
  status(`${page.items.length} studies on ${state.server}`);
  showTotal(server, params, page, seq);
}

// "of N" beside the page: known when this is the last page, else counted (up to a cap) by the API
async function showTotal(server, params, page, seq) {
  let total = page.more ? null : state.offset + page.items.length;
  let capped = false;
  if (total === null) {
    try {
      ({total, capped} = await api(`/api/servers/${enc(server)}/studies/count?${params}`, {quiet: true}));
    } catch (e) { return; }
  }
  if (seq !== state.querySeq) return;  // a newer query owns the pager
  $("#total-label").textContent = total ? `of ${capped ? "more than " : ""}${total} ${total === 1 ? "study" : "studies"}` : "";
}

function cells(values) { return values.map(v => el("td", {text: v ?? ""})); }

// DICOM PN "FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX" -> "FAMILY, GIVEN MIDDLE"; DA "YYYYMMDD" -> "YYYY-MM-DD"
function formatName(pn) {
  if (!pn) return "";
  const [family = "", given = "", middle = "", prefix = "", suffix = ""] = String(pn).split("=")[0].split("^");
  const rest = [prefix, given, middle, suffix].filter(Boolean).join(" ");
  return rest ? `${family}, ${rest}` : family;
}
function formatDate(da) {
  const d = String(da || "");
  return /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : d;
}
const bySeriesNumber = (a, b) => (a.series_number ?? 1e9) - (b.series_number ?? 1e9)
  || String(a.description || "").localeCompare(String(b.description || ""));

// click a column header to sort the shown rows by it (again: reverse)
const STUDY_KEYS = [null, "patient_name", "patient_id", "study_date", "modalities", "description",
  "accession_number", "num_series", "num_instances"];
function sortValue(study, key) {
  const v = study[key];
  return Array.isArray(v) ? v.join(",") : v ?? "";
}
function sortStudies(items) {
  const {key, dir} = state.sort || {};
  if (!key) return items;
  return [...items].sort((a, b) => {
    const x = sortValue(a, key), y = sortValue(b, key);
    const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return c * dir;
  });
}
document.querySelectorAll("#study-table thead th").forEach((th, i) => {
  if (!STUDY_KEYS[i]) return;
  th.classList.add("sortable");
  th.addEventListener("click", () => {
    const same = state.sort && state.sort.key === STUDY_KEYS[i];
    state.sort = {key: STUDY_KEYS[i], dir: same ? -state.sort.dir : 1};
    document.querySelectorAll("#study-table thead th").forEach(h => { delete h.dataset.sorted; });
    th.dataset.sorted = state.sort.dir > 0 ? "asc" : "desc";
    renderStudies(state.items || []);
  });
});

function clearBrowse() {
  state.items = [];
  $("#study-table tbody").replaceChildren();
  $("#series-list").replaceChildren();
  $("#metadata-table tbody").replaceChildren();
  $("#metadata-title").textContent = "";
  $("#page-label").textContent = "";
  $("#total-label").textContent = "";
  $("#prev-page").disabled = $("#next-page").disabled = true;
}

function renderStudies(items) {
  const body = $("#study-table tbody");
  body.replaceChildren(...sortStudies(items).map(study => {
    const box = el("input", {type: "checkbox", checked: state.selected.has(study.study_uid),
      onchange: e => { toggleStudy(study.study_uid, e.target.checked); e.stopPropagation(); }});
    const row = el("tr", {dataset: {uid: study.study_uid}, onclick: () => openStudy(study, row)},
      el("td", {}, box), ...cells([formatName(study.patient_name), study.patient_id, formatDate(study.study_date),
        (study.modalities || []).join(","), study.description, study.accession_number,
        study.num_series, study.num_instances]));
    return row;
  }));
}

function toggleStudy(uid, on) {
  if (on) state.selected.set(uid, state.selected.get(uid) || new Set());
  else state.selected.delete(uid);
  selectionChanged();
}

async function openStudy(study, row) {
  document.querySelectorAll("#study-table tr.current").forEach(r => r.classList.remove("current"));
  row.classList.add("current");
  const series = await api(`/api/servers/${enc(state.server)}/studies/${enc(study.study_uid)}/series`);
  const chosen = state.selected.get(study.study_uid);
  $("#series-list").replaceChildren(...series.sort(bySeriesNumber).map(s => seriesCard(state.server, s, {
    checked: Boolean(chosen && chosen.has(s.series_uid)),
    select: on => {
      const set = state.selected.get(study.study_uid) || new Set();
      if (on) set.add(s.series_uid); else set.delete(s.series_uid);
      if (set.size) state.selected.set(study.study_uid, set); else state.selected.delete(study.study_uid);
      selectionChanged();
    },
  })));
}

function seriesCard(server, s, actions) {
  const thumb = el("img", {alt: "thumbnail", loading: "lazy",
    src: `/api/servers/${enc(server)}/studies/${enc(s.study_uid)}/series/${enc(s.series_uid)}/thumbnail`});
  thumb.addEventListener("error", () => thumb.classList.add("missing"));
  const card = el("div", {className: "series-card", dataset: {uid: s.series_uid}},
    thumb, el("div", {className: "caption",
      text: `#${s.series_number ?? ""} ${s.modality} ${s.description || "(no description)"} · ${s.num_instances ?? "?"} images`}));
  card.addEventListener("click", () => showMetadata(server, s, card));
  const bar = el("div", {className: "actions"});
  if (actions.select) bar.append(el("label", {}, el("input", {type: "checkbox", className: "series-select",
    checked: Boolean(actions.checked), onclick: e => e.stopPropagation(), onchange: e => actions.select(e.target.checked)}), " fetch"));
  if (actions.view) bar.append(el("button", {text: "View", className: "view-button",
    onclick: e => { e.stopPropagation(); actions.view(); }}));
  if (actions.scene) bar.append(el("button", {text: "Open scene", className: "scene-button",
    onclick: e => { e.stopPropagation(); actions.scene(); }}));
  if (actions.remove) bar.append(el("button", {text: "Delete", className: "delete-button",
    onclick: e => { e.stopPropagation(); actions.remove(); }}));
  card.append(bar);
  return card;
}

// ---------------------------------------------------------------- metadata panel
// Names from pydicom's dictionary (GET /api/dictionary, once); nested sequences expandable;
// every person-name group; one instance at a time; filter by name, keyword, tag or value.
let dictionary = null;
async function attributeName(tag) {
  if (!dictionary) dictionary = await api("/api/dictionary").catch(() => ({}));
  const exact = dictionary[tag];
  if (exact) return exact;
  // repeating groups (60xx overlays...): try the masks pydicom keeps
  for (const masked of [`${tag.slice(0, 2)}xx${tag.slice(4)}`, `${tag.slice(0, 4)}xx${tag.slice(6)}`]) {
    if (dictionary[masked]) return dictionary[masked];
  }
  return [parseInt(tag.slice(0, 4), 16) % 2 ? "(private)" : "", "", ""];
}

function personName(v) {
  return ["Alphabetic", "Ideographic", "Phonetic"].map(k => v[k] || "").join("=").replace(/=+$/, "");
}

function elementValue(elem) {
  if (elem.vr === "SQ") return `${(elem.Value || []).length} item(s)`;
  if (elem.Value) return elem.Value.map(v => elem.vr === "PN" && typeof v === "object" ? personName(v)
    : typeof v === "object" ? JSON.stringify(v) : v).join("\\");
  if (elem.BulkDataURI || elem.InlineBinary) return "(bulk data)";
  return "";
}

async function metadataRows(dataset, depth, parent) {
  const rows = [];
  for (const [tag, elem] of Object.entries(dataset).sort()) {
    const [keyword, name] = await attributeName(tag);
    const id = `${parent}/${tag}`;
    const label = el("td", {className: "tag", text: `${"  ".repeat(depth)}(${tag.slice(0, 4)},${tag.slice(4)})`});
    const row = el("tr", {dataset: {tag, keyword, id, parent, depth}},
      label, ...cells([name || keyword, elem.vr, String(elementValue(elem)).slice(0, 300)]));
    if (depth) row.hidden = true;
    rows.push(row);
    if (elem.vr === "SQ" && elem.Value && elem.Value.length) {
      row.classList.add("sequence");
      label.prepend(el("button", {className: "expand", text: "▸", onclick: e => {
        e.stopPropagation(); toggleSequence(row); }}));
      for (const [i, item] of elem.Value.entries()) {
        const itemId = `${id}/${i}`;
        rows.push(el("tr", {className: "item", hidden: true, dataset: {id: itemId, parent: id, depth: depth + 1}},
          el("td", {colSpan: 4, text: `${"  ".repeat(depth + 1)}item ${i + 1}`})));
        rows.push(...await metadataRows(item, depth + 1, itemId));
      }
    }
  }
  return rows;
}

function toggleSequence(row) {
  const open = row.classList.toggle("open");
  $(".expand", row).textContent = open ? "▾" : "▸";
  const prefix = `${row.dataset.id}/`;
  const items = new Set();  // the sequence's items: shown with their own elements (one level)
  document.querySelectorAll("#metadata-table tbody tr").forEach(r => {
    if (!r.dataset.id || !r.dataset.id.startsWith(prefix)) return;
    if (!open) {
      r.hidden = true;
      r.classList.remove("open");
      const button = $(".expand", r);
      if (button) button.textContent = "▸";
    } else if (r.dataset.parent === row.dataset.id) {
      items.add(r.dataset.id);
      r.hidden = false;
    } else if (items.has(r.dataset.parent)) r.hidden = false;
  });
}

const instanceNumber = h => Number((h["00200013"] && h["00200013"].Value || [0])[0]);

// One metadata panel, shown in the tab whose series was clicked (Browse or Local database);
// moved to another tab, it is emptied (it never shows one tab's series in the other).
function placeMetadata(tab) {
  const slot = tab === "local" ? $("#local-detail") : $("#browse-detail");
  const panel = $("#metadata-panel");
  if (panel.parentElement === slot) return;
  slot.append(panel);
  clearMetadata();
}
function clearMetadata() {
  $("#metadata-table tbody").replaceChildren();
  $("#metadata-title").textContent = "";
  $("#metadata-instance").hidden = true;
}

async function showMetadata(server, s, card) {
  if (card) placeMetadata(card.closest(".panel").id);
  status("reading metadata (no pixel data is fetched)…");
  const headers = await api(`/api/servers/${enc(server)}/studies/${enc(s.study_uid)}/series/${enc(s.series_uid)}/metadata`);
  headers.sort((a, b) => instanceNumber(a) - instanceNumber(b));
  state.metadata = {headers, title: s.description || s.series_uid};
  const picker = $("#metadata-instance");
  picker.replaceChildren(...headers.map((h, i) => el("option", {value: i,
    text: `instance ${i + 1}/${headers.length}${instanceNumber(h) ? ` (#${instanceNumber(h)})` : ""}`})));
  picker.hidden = headers.length < 2;
  await showInstance(0);
  status(`metadata of ${headers.length} instances`);
}

async function showInstance(index) {
  const {headers, title} = state.metadata;
  $("#metadata-title").textContent = `${title} · ${headers.length} instances`;
  $("#metadata-table tbody").replaceChildren(...await metadataRows(headers[index] || {}, 0, ""));
  filterMetadata();
}
$("#metadata-instance").addEventListener("change", e => showInstance(Number(e.target.value)));

function filterMetadata() {
  const needle = $("#metadata-filter").value.toLowerCase().replace(/[(),\s]/g, "");
  document.querySelectorAll("#metadata-table tbody tr").forEach(r => {
    if (!needle) { r.hidden = Number(r.dataset.depth || 0) > 0; return; }
    const text = (r.textContent + " " + (r.dataset.keyword || "")).toLowerCase().replace(/[(),\s]/g, "");
    r.hidden = !text.includes(needle);  // a match inside a sequence is shown too
  });
}
$("#metadata-filter").addEventListener("input", filterMetadata);

$("#browse-filters").addEventListener("submit", e => {
  e.preventDefault();
  state.server = $("#server-select").value;
  state.filters = studyFilters(e.target);
  state.offset = 0;
  state.selected.clear();
  selectionChanged();
  queryStudies();
});
$("#prev-page").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); queryStudies(); });
$("#next-page").addEventListener("click", () => { state.offset += state.limit; queryStudies(); });
$("#page-size").addEventListener("change", e => { state.limit = Number(e.target.value); state.offset = 0; queryStudies(); });

// Fetch and "Request automated segmentation" act on the selected studies.
function selectionChanged() {
  $("#fetch-button").disabled = $("#segment-button").disabled = state.selected.size === 0;
}

// A UPS-RS workitem (PS3.4 Annex CC) on this server's own worklist: segment the study where it is
// (Retrieve AE Title = the server's name) and store the results back there. `dicomstation worker`
// claims it; the segmenter is the worker's own setting, never the workitem's.
function segmentationWorkitem(study, series, server) {
  const sq = (...items) => ({vr: "SQ", Value: items});
  const input = {"0020000D": {vr: "UI", Value: [study]}, "00080054": {vr: "AE", Value: [server]}};
  if (series.length) input["00081115"] = sq(...series.map(uid => ({"0020000E": {vr: "UI", Value: [uid]}})));
  return [{
    "00741000": {vr: "CS", Value: ["SCHEDULED"]},
    "00741204": {vr: "LO", Value: [`Automated segmentation of ${study}`]},
    "00404018": sq({"00080100": {vr: "SH", Value: ["segmentation"]}, "00080102": {vr: "SH", Value: ["99DICOMSTATION"]},
      "00080104": {vr: "LO", Value: ["Automated segmentation"]}}),
    "00404021": sq(input),
    "00404070": sq({"00404071": sq({"21000140": {vr: "AE", Value: [server]}})}),
  }];
}

$("#segment-button").addEventListener("click", async () => {
  const made = [];
  for (const [study, series] of state.selected) {
    const response = await fetch("/dicom-web/workitems", {method: "POST",
      headers: {"Content-Type": "application/dicom+json", "Accept": "application/dicom+json"},
      body: JSON.stringify(segmentationWorkitem(study, [...series], state.server))});
    if (!response.ok) { status(`workitem for ${study} refused: ${response.status}`, true); return; }
    made.push(study);
  }
  status(`${made.length} segmentation workitem(s) scheduled on this server's worklist (run 'dicomstation worker' to perform them)`);
});

// ---------------------------------------------------------------- jobs
$("#fetch-button").addEventListener("click", async () => {
  const items = [...state.selected].map(([study, series]) => ({study, series: [...series]}));
  const job = await post("/api/fetch", {server: state.server, items});
  watchJob(job);
});

function jobRow(job) {
  let row = document.getElementById(`job-${job.id}`);
  if (!row) {
    row = el("div", {className: "job", id: `job-${job.id}`},
      el("span", {className: "title"}), el("progress", {max: 1, value: 0}),
      el("span", {className: "detail"}),
      el("button", {text: "Cancel", className: "cancel", onclick: () => post(`/api/jobs/${job.id}/cancel`, {})}));
    $("#jobs").prepend(row);
  }
  return row;
}

function renderJob(job) {
  const row = jobRow(job);
  row.dataset.state = job.state;
  $(".title", row).textContent = job.title;
  const bar = $("progress", row);
  const byInstance = job.total != null && job.total > 0;
  bar.max = byInstance ? job.total : Math.max(job.items_total || 1, 1);
  bar.value = byInstance ? job.done : job.items_done || 0;
  const mb = (job.bytes / 1e6).toFixed(1);
  const failures = job.reports.flatMap(r => Object.entries(r.failed)).slice(0, 3)
    .map(([k, v]) => `${k}: ${v}`).join("; ");
  const items = job.items_total != null ? `${job.items_done}/${job.items_total} item(s)` : "";
  const instances = job.total != null || job.done ? `${job.done}/${job.total ?? "?"} instances` : "";
  $(".detail", row).textContent = [job.state, items, instances, job.bytes ? `${mb} MB` : "",
    `${job.seconds}s`, job.message, failures].filter(Boolean).join(" · ");
  $(".cancel", row).disabled = job.state !== "running";
}

async function watchJob(job) {
  renderJob(job);
  while (job.state === "running") {
    await new Promise(r => setTimeout(r, 300));
    job = await api(`/api/jobs/${job.id}`);
    renderJob(job);
  }
  status(`${job.title}: ${job.state}`, job.state === "failed");
  return job;
}

// ---------------------------------------------------------------- local database
async function queryLocal() {
  await state.ohifReady;  // the study rows need to know whether OHIF is there
  const form = $("#local-filters");
  const params = new URLSearchParams({...studyFilters(form), limit: 200});
  const page = await api(`/api/servers/local/studies?${params}`);
  $("#local-count").textContent = `${page.items.length}${page.more ? "+" : ""} ${page.items.length === 1 ? "study" : "studies"}`;
  $("#local-study-table tbody").replaceChildren(...page.items.map(study => {
    const row = el("tr", {dataset: {uid: study.study_uid}, onclick: () => openLocalStudy(study)},
      ...cells([formatName(study.patient_name), study.patient_id, formatDate(study.study_date), (study.modalities || []).join(","),
        study.description, study.num_series, study.num_instances]),
      el("td", {}, ohifLink(study.study_uid), el("button", {text: "Delete", className: "delete-study",
        onclick: e => { e.stopPropagation(); removeLocal(study.study_uid, `study of ${study.patient_name}`); }})));
    return row;
  }));
}
$("#local-filters").addEventListener("submit", e => { e.preventDefault(); queryLocal(); });

async function openLocalStudy(study) {
  const series = await api(`/api/servers/local/studies/${enc(study.study_uid)}/series`);
  const scenes = new Map((await api(`/api/studies/${enc(study.study_uid)}/scenes`)).map(b => [b.series_uid, b]));
  if ($("#metadata-panel").parentElement === $("#local-detail")) clearMetadata();  // another study's series
  $("#local-series-list").replaceChildren(...series.sort(bySeriesNumber).map(s => seriesCard("local", s, {
    view: () => loadVolume(s),
    scene: scenes.has(s.series_uid) ? () => openScene(scenes.get(s.series_uid)) : null,
    remove: () => removeLocal(s.series_uid, `series ${s.description || s.series_uid}`).then(() => openLocalStudy(study)),
  })));
}

async function removeLocal(uid, what) {
  if (!confirm(`Delete ${what} from the local database?`)) return;
  const result = await api(`/api/local/${enc(uid)}`, {method: "DELETE"});
  status(`deleted ${result.instances} instances`);
  $("#local-series-list").replaceChildren();
  queryLocal();
}

// OHIF (served at /viewer/ on this origin when installed): "Open in OHIF" on every local study
async function loadOhif() {
  try { state.ohif = await api("/api/ohif"); } catch (e) { state.ohif = {installed: false, hint: "OHIF state unknown"}; }
  $("#ohif-hint").textContent = state.ohif.installed ? "" : state.ohif.hint;
}

function ohifLink(studyUid) {
  if (!state.ohif || !state.ohif.installed) {
    return el("span", {className: "ohif-missing", text: "OHIF not installed",
      title: state.ohif ? state.ohif.hint : ""});
  }
  return el("a", {className: "ohif-link", text: "Open in OHIF", target: "_blank", rel: "noopener",
    href: `${state.ohif.url}viewer?StudyInstanceUIDs=${enc(studyUid)}`, onclick: e => e.stopPropagation()});
}

// ---------------------------------------------------------------- viewer
const VIEWS = ["axial", "coronal", "sagittal"];

// Several loadables in one series (echoes, magnitude/phase...): the user picks one, seeing
// each one's confidence and warnings; a single loadable loads at once.
async function chooseLoadable(series) {
  const found = await api(`/api/series/${enc(series.series_uid)}/loadables`);
  if (found.length < 2) return null;
  const list = $("#loadable-list");
  list.replaceChildren(...found.map((ld, i) => el("label", {className: "loadable"},
    el("input", {type: "radio", name: "loadable", value: ld.index, checked: i === 0}),
    el("span", {className: "name", text: ` ${ld.name}`}),
    el("span", {className: "meta", text: ` ${ld.kind} · ${ld.frames} frames · confidence ${ld.confidence.toFixed(2)}`}),
    ...ld.warnings.map(w => el("div", {className: "warning", text: `⚠ ${w}`})))));
  const dialog = $("#loadable-dialog");
  document.body.append(dialog);  // out of the (maybe hidden) viewer panel, so it can show
  dialog.showModal();
  await new Promise(resolve => dialog.addEventListener("close", resolve, {once: true}));
  if (dialog.returnValue !== "ok") return undefined;
  return Number($("#loadable-list input:checked").value);
}

async function loadVolume(series) {
  const chosen = await chooseLoadable(series);
  if (chosen === undefined) return;  // the user cancelled the chooser
  status(`loading ${series.description || series.series_uid}…`);
  const info = chosen === null ? await post("/api/volumes", {series_uid: series.series_uid})
    : await post(`/api/series/${enc(series.series_uid)}/loadables/${chosen}`, {});
  showVolume(info, series);
}

// A scene bundle reopened: its volume, segmentation (the mask), window and slice
async function openScene(bundle) {
  status("reopening the scene…");
  const info = await post("/api/scenes", {bundle_uid: bundle.bundle_uid});
  showVolume(info, {series_uid: info.series_uid, description: `(scene ${bundle.description})`});
  $("#export-result").textContent = "";
  const scene = info.scene;
  if (scene.window) {
    $("#preset").value = "";
    $("#wl-center").value = Math.round(scene.window[0]);
    $("#wl-width").value = Math.max(1, Math.round(scene.window[1]));
  }
  if (scene.slice) $(`#slider-${scene.slice.view}`).value = scene.slice.index;
  state.seeds = scene.seeds || [];  // the bundle's cursor: the last seed of its export
  $("#seed-list").textContent = state.seeds.map(s => `(${s.join(",")})`).join(" ") || "none";
  $("#seg-result").textContent = scene.segments.length
    ? `scene segmentation: ${scene.segments.map(s => s.label).join(", ")}` : "";
  renderViews();
  status(`scene restored from bundle ${bundle.bundle_uid}`);
}

function showVolume(info, series) {
  state.volume = info;
  state.seeds = [];
  state.exported = [];
  state.source = series;
  $("#viewer-empty").hidden = true;
  $("#viewer-body").hidden = false;
  $("#volume-title").textContent = `${info.modality} ${series.description || ""} ${info.shape.axial}×${info.shape.coronal}×${info.shape.sagittal}`;
  for (const view of VIEWS) {
    const slider = $(`#slider-${view}`);
    slider.max = info.shape[view] - 1;
    slider.value = Math.floor(info.shape[view] / 2);
  }
  $("#preset").value = "";  // the default window: CT by body part or soft tissue, else percentiles
  $("#preset option[value='']").textContent = `default: ${info.default_window.source}`;
  for (const view of VIEWS) resetView(view);
  if (window.viewerExtra) viewerExtra.volumeLoaded(info);  // cine, colour, RTSTRUCT (viewer_extra.js)
  applyPreset();
  loadSegOverlays(info);
  $("#seed-list").textContent = "none";
  showTab("viewer");
  status(info.warnings.length ? `loaded with warnings: ${info.warnings.join("; ")}` : "volume loaded");
}

function windowParam() {
  const c = $("#wl-center").value, w = $("#wl-width").value;
  return c !== "" && w !== "" && Number(w) > 0 ? `${c},${w}` : "";
}

// SEGs of the database that reference the viewed series: one checkbox per segment
async function loadSegOverlays(info) {
  const box = $("#seg-overlays");
  box.replaceChildren();
  const segs = await api(`/api/volumes/${info.id}/segs`);
  if (!segs.length) return;
  box.append(el("strong", {text: "SEG overlays"}));
  for (const seg of segs) {
    box.append(el("span", {className: "seg-title", text: seg.description || seg.series_uid}));
    for (const s of seg.segments) {
      box.append(el("label", {className: "segment"}, el("input", {type: "checkbox",
        dataset: {seg: seg.series_uid, number: s.number}, onchange: renderViews}),
        el("span", {className: "swatch", style: `background:${s.color}`}), ` ${s.number} ${s.label}`));
    }
  }
}

function segParam() {
  const chosen = {};
  document.querySelectorAll("#seg-overlays input:checked").forEach(i => {
    (chosen[i.dataset.seg] = chosen[i.dataset.seg] || []).push(i.dataset.number);
  });
  return Object.entries(chosen).map(([uid, n]) => `${uid}:${n.join(",")}`).join(";");
}

function renderViews() {
  if (!state.volume) return;
  const segs = $("#mip").checked ? "" : segParam();
  for (const view of VIEWS) {
    const params = new URLSearchParams({view, index: $(`#slider-${view}`).value,
      mip: $("#mip").checked ? "1" : "0", overlay: $("#overlay").checked ? "1" : "0", t: Date.now()});
    const w = windowParam();
    if (w) params.set("window", w);
    if (segs) params.set("segs", segs);
    const extra = window.viewerExtra ? viewerExtra.params() : {};  // cine frame, RT ROIs (viewer_extra.js)
    for (const [k, v] of Object.entries(extra)) params.set(k, v);
    if ($(`#view-${view}`).closest("figure").hidden) continue;  // a 2D image shows one view
    $(`#view-${view}`).src = `/api/volumes/${state.volume.id}/${segs || Object.keys(extra).length ? "render-segs" : "render"}?${params}`;
    $(`#${view}-label`).textContent = $("#mip").checked ? "MIP" : `${Number($(`#slider-${view}`).value) + 1}/${state.volume.shape[view]}`;
  }
}

async function loadPresets() {
  const presets = await api("/api/presets");
  for (const [name, [c, w]] of Object.entries(presets)) {
    $("#preset").append(el("option", {value: name, text: `CT ${name} (${c}/${w})`, dataset: {c, w}}));
  }
}

function applyPreset() {
  const option = $("#preset").selectedOptions[0];
  if (option && option.value) {
    $("#wl-center").value = option.dataset.c;
    $("#wl-width").value = option.dataset.w;
  } else if (state.volume) {
    const {center, width} = state.volume.default_window;
    $("#wl-center").value = Math.round(center);
    $("#wl-width").value = Math.max(1, Math.round(width));
  }
  renderViews();
}

$("#preset").addEventListener("change", applyPreset);
for (const id of ["#wl-center", "#wl-width"]) $(id).addEventListener("change", () => { $("#preset").value = ""; renderViews(); });
for (const id of ["#mip", "#overlay"]) $(id).addEventListener("change", renderViews);
// Mouse on a view: wheel scrolls slices, Ctrl+wheel zooms, right-drag sets window/level,
// Shift+drag or middle-drag pans, double-click resets zoom and pan. Letters give orientation.
const ORIENT = {axial: ["A", "P", "R", "L"], coronal: ["S", "I", "R", "L"], sagittal: ["S", "I", "A", "P"]};
state.views = {};

function resetView(view) {
  state.views[view] = {zoom: 1, x: 0, y: 0};
  applyTransform(view);
}
function applyTransform(view) {
  const v = state.views[view] || {zoom: 1, x: 0, y: 0};
  $(`#view-${view}`).style.transform = `translate(${v.x}px, ${v.y}px) scale(${v.zoom})`;
}

let pendingRender = null;
function renderSoon() {  // at most ~8 renders a second while dragging
  if (pendingRender) return;
  pendingRender = setTimeout(() => { pendingRender = null; renderViews(); }, 120);
}

function dragWindow(e) {
  const width = Math.max(1, Number($("#wl-width").value) || 1);
  const step = Math.max(1, width / 256);
  $("#wl-width").value = Math.max(1, Math.round(width + e.movementX * step));
  $("#wl-center").value = Math.round((Number($("#wl-center").value) || 0) - e.movementY * step);
  $("#preset").value = "";
  renderSoon();
}

function setupView(view) {
  const img = $(`#view-${view}`);
  const wrap = el("div", {className: "view-wrap", dataset: {view}});
  img.replaceWith(wrap);
  wrap.append(img);
  ORIENT[view].forEach((letter, i) => wrap.append(el("span",
    {className: `orient ${["top", "bottom", "left", "right"][i]}`, text: letter})));
  img.draggable = false;
  resetView(view);
  $(`#slider-${view}`).addEventListener("input", renderViews);
  wrap.addEventListener("contextmenu", e => e.preventDefault());
  wrap.addEventListener("wheel", e => {
    e.preventDefault();
    if (e.ctrlKey) {
      const v = state.views[view];
      v.zoom = Math.min(8, Math.max(1, v.zoom * (e.deltaY < 0 ? 1.25 : 0.8)));
      applyTransform(view);
      return;
    }
    const slider = $(`#slider-${view}`);
    slider.value = Number(slider.value) + (e.deltaY > 0 ? 1 : -1);
    renderViews();
  });
  wrap.addEventListener("dblclick", () => resetView(view));
  wrap.addEventListener("mousedown", e => {
    const mode = e.button === 2 ? "window" : e.button === 1 || e.shiftKey ? "pan" : null;
    if (!mode) return;
    e.preventDefault();
    state.dragged = false;
    const move = ev => {
      state.dragged = true;
      if (mode === "window") { dragWindow(ev); return; }
      const v = state.views[view];
      v.x += ev.movementX; v.y += ev.movementY;
      applyTransform(view);
    };
    const up = () => {
      window.removeEventListener("mousemove", move);
      window.removeEventListener("mouseup", up);
      if (mode === "window") renderViews();
    };
    window.addEventListener("mousemove", move);
    window.addEventListener("mouseup", up);
  });
}
VIEWS.forEach(setupView);

$("#view-axial").addEventListener("click", e => {
  if (!state.volume || e.shiftKey) return;  // Shift+drag pans
  const img = e.target;
  const row = Math.floor(e.offsetY / img.clientHeight * state.volume.shape.coronal);
  const col = Math.floor(e.offsetX / img.clientWidth * state.volume.shape.sagittal);
  state.seeds.push([Number($("#slider-axial").value), row, col]);
  $("#seed-list").textContent = state.seeds.map(s => `(${s.join(",")})`).join(" ");
});
$("#clear-seeds").addEventListener("click", () => { state.seeds = []; $("#seed-list").textContent = "none"; });

async function segment(method) {
  const body = {method, low: Number($("#seg-low").value), high: Number($("#seg-high").value), seeds: state.seeds};
  const result = await post(`/api/volumes/${state.volume.id}/segment`, body);
  const size = result.area_mm2 !== undefined ? `${result.area_mm2} mm²` : `${result.volume_ml} ml`;
  $("#seg-result").textContent = `${result.voxels} voxels · ${size}`;
  status(`segmented (${method})`);
  renderViews();
}
$("#threshold-button").addEventListener("click", () => segment("threshold"));
$("#grow-button").addEventListener("click", () => segment("region_grow"));

$("#export-open").addEventListener("click", () => {
  $("#export-result").textContent = "";  // no earlier export's result while this one runs
  $("#export-dialog").showModal();
});
$("#export-dialog").addEventListener("close", async () => {
  if ($("#export-dialog").returnValue !== "ok") return;
  const body = Object.fromEntries(new FormData($("#export-form")));
  if (body.kind !== "DERIVED") { delete body.smooth_mm; delete body.median; }
  else if (body.median) delete body.smooth_mm;
  body.index = $("#slider-axial").value;
  body.window = windowParam();
  body.seeds = state.seeds;  // a scene bundle keeps the last one as its cursor
  $("#export-result").textContent = `exporting ${body.kind}…`;
  const job = await watchJob(await post(`/api/volumes/${state.volume.id}/export`, body));  // a ledger job
  if (job.state !== "done") {
    $("#export-result").textContent = `export ${body.kind} ${job.state}: ${job.message}`;
    return;
  }
  state.exported.push(...job.outputs.filter(uid => !state.exported.includes(uid)));
  $("#export-result").textContent = `exported ${body.kind}: ${job.outputs.join(", ")}`;
  status(`exported ${body.kind} into the local database`);
});

function updateSendProtocol() {
  const server = state.servers.find(s => s.name === $("#send-server").value);
  $("#send-protocol").textContent = server ? `protocol: ${server.protocol === "dimse" ? "DIMSE C-STORE" : server.protocol === "local" ? "local copy" : "DICOMweb STOW-RS"}` : "";
}
$("#send-server").addEventListener("change", updateSendProtocol);
$("#send-open").addEventListener("click", () => {
  $("#export-result").textContent = "";  // as for an export: no earlier result while it runs
  updateSendProtocol();
  $("#send-dialog").showModal();
});
$("#send-dialog").addEventListener("close", async () => {
  if ($("#send-dialog").returnValue !== "ok") return;
  const uids = [...state.exported];
  if ($("#send-source").checked) uids.push(state.volume.series_uid);
  if (!uids.length) { status("nothing to send: export something first", true); return; }
  const job = await post("/api/send", {server: $("#send-server").value, uids, deid: $("#send-deid").checked});
  showTab("browse");
  const done = await watchJob(job);
  $("#export-result").textContent = `send: ${done.state}`;
});

// ---------------------------------------------------------------- settings
async function loadSettings() {
  await loadServers();
  $("#server-table tbody").replaceChildren(...state.servers.filter(s => s.protocol !== "local").map(s =>
    el("tr", {dataset: {name: s.name}}, ...cells([s.name, s.protocol,
      s.protocol === "dimse" ? `${s.ae_title}@${s.host}:${s.port}` : s.url,
      s.username || "", s.password || "", s.token || ""]),
      el("td", {}, el("button", {text: "Edit", onclick: () => editServer(s)}),
        el("button", {text: "Remove", className: "remove-server", onclick: async () => {
          if (!confirm(`Remove server ${s.name} and its stored credentials?`)) return;
          await api(`/api/servers/${enc(s.name)}`, {method: "DELETE"}); loadSettings(); }})))));
  const auth = await api("/api/auth");
  $("#auth-form").username.value = auth.username;
  $("#auth-state").textContent = `password: ${auth.password}`;
}

function editServer(s) {
  const form = $("#server-form");
  for (const key of ["name", "protocol", "url", "username", "ae_title", "host", "port",
                     "issuer", "client_id", "scope"]) {
    if (form[key]) form[key].value = s[key] ?? "";
  }
  form.password.value = "";
  form.token.value = "";
  form.client_secret.value = "";
}

$("#server-form").addEventListener("submit", async e => {
  e.preventDefault();
  const body = Object.fromEntries(new FormData(e.target));
  const name = body.name;
  delete body.name;
  if (body.protocol === "dimse") for (const key of ["issuer", "client_id", "scope"]) delete body[key];
  await post(`/api/servers/${enc(name)}`, body, "PUT");
  e.target.password.value = "";
  e.target.token.value = "";
  e.target.client_secret.value = "";
  status(`saved server ${name}`);
  loadSettings();
});

$("#auth-form").addEventListener("submit", async e => {
  e.preventDefault();
  await post("/api/auth", Object.fromEntries(new FormData(e.target)), "PUT");
  e.target.password.value = "";
  status("saved credentials");
  loadSettings();
});

// ---------------------------------------------------------------- start
// No query at start: the user picks the server (an unreachable one would cost retries and
// its late error would overwrite what the user asked for meanwhile).
loadServers().then(() => status("pick a server and press Query"));
loadPresets();
state.ohifReady = loadOhif();
