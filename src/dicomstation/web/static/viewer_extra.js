// Workstation viewer, the object types app.js does not draw itself: cine / multi-frame
// playback at the file's frame rate, colour images (shown as stored, no window/level) and
// RTSTRUCT contours with "Load as label map". Loaded after app.js and uses its helpers
// ($, el, api, post, enc, status, state, renderViews); app.js asks viewerExtra.params()
// for the extra render parameters and calls viewerExtra.volumeLoaded(info) after a load.
"use strict";

const viewerExtra = (() => {
  const cine = {volumeId: null, frame: 0, playing: false, timer: null};

  function current() { return state.volume && cine.volumeId === state.volume.id ? state.volume : null; }

  function roiParam() {
    const chosen = {};
    document.querySelectorAll("#rt-overlays input.roi:checked").forEach(i => {
      (chosen[i.dataset.rt] = chosen[i.dataset.rt] || []).push(i.dataset.number);
    });
    return Object.entries(chosen).map(([uid, n]) => `${uid}:${n.join(",")}`).join(";");
  }

  // extra query parameters of every view request: the time point and the RT ROIs shown
  function params() {
    const volume = current();
    if (!volume) return {};
    const out = {};
    if (volume.frames > 1) out.frame = String(cine.frame);
    const rois = roiParam();
    if (rois) out.rois = rois;
    return out;
  }

  // ------------------------------------------------------------ cine
  function cineLabel() {
    const volume = current();
    if (!volume || !volume.cine) return;
    $("#cine-frame").value = cine.frame;
    $("#cine-label").textContent = `frame ${cine.frame + 1}/${volume.frames} · ` +
      `${volume.cine.fps} frames/s (${volume.cine.source})`;
  }

  function showFrame(frame) {
    const volume = current();
    if (!volume) return;
    cine.frame = ((frame % volume.frames) + volume.frames) % volume.frames;
    cineLabel();
    renderViews();
  }

  // the next frame is asked for once the shown one has arrived, then after the rest of
  // its interval, so a slow server drops the rate instead of piling up requests
  function tick() {
    const volume = current();
    if (!cine.playing || !volume) return;
    const started = performance.now();
    const wait = volume.cine.intervals_ms[cine.frame] || 100;
    const img = $("#view-axial");
    const done = new AbortController();
    const next = ok => {
      done.abort();  // removes both listeners
      if (!ok) { stop(); status("cine stopped: a frame failed to load", true); return; }
      cine.timer = setTimeout(tick, Math.max(0, wait - (performance.now() - started)));
    };
    img.addEventListener("load", () => next(true), {signal: done.signal});
    img.addEventListener("error", () => next(false), {signal: done.signal});
    showFrame(cine.frame + 1);
  }

  function play() {
    if (cine.playing || !current()) return;
    cine.playing = true;
    $("#cine-play").textContent = "Pause";
    tick();
  }

  function stop() {
    cine.playing = false;
    clearTimeout(cine.timer);
    $("#cine-play").textContent = "Play";
  }

  function setupCine(info) {
    const bar = $("#cine-bar");
    bar.hidden = !(info.frames > 1 && info.cine);
    $("#cine-frame").max = Math.max(0, info.frames - 1);
    cineLabel();
  }

  $("#cine-play").addEventListener("click", () => (cine.playing ? stop() : play()));
  $("#cine-frame").addEventListener("input", e => { stop(); showFrame(Number(e.target.value)); });

  // ------------------------------------------------------------ colour
  // PS3.3 applies window/level to greyscale only: a colour image is shown as stored
  function setupColour(info) {
    for (const id of ["#wl-center", "#wl-width", "#preset"]) {
      $(id).disabled = Boolean(info.colour);
      $(id).title = info.colour ? "colour image: shown as stored, no window/level" : "";
    }
  }

  // a single 2D image (one slice: US, screenshots, cine frames) shows the axial view only;
  // an image without patient geometry has no orientation letters (they would be made up)
  function setupViews(info) {
    const flat = info.shape.axial === 1;
    for (const view of ["coronal", "sagittal"]) $(`#view-${view}`).closest("figure").hidden = flat;
    document.querySelectorAll("#viewer .orient").forEach(letter => { letter.hidden = !info.geometry; });
  }

  // ------------------------------------------------------------ RTSTRUCT
  async function loadLabelMap(rt) {
    const rois = [...document.querySelectorAll(`#rt-overlays input.roi[data-rt="${rt.series_uid}"]:checked`)]
      .map(i => Number(i.dataset.number));
    const result = await post(`/api/volumes/${state.volume.id}/rtstructs/${enc(rt.series_uid)}/labelmap`, {rois});
    const names = result.rois.map(r => `${r.name} ${r.voxels}`).join(", ");
    $("#seg-result").textContent = `label map: ${result.voxels} voxels · ${result.volume_ml} ml (${names})`;
    $("#overlay").checked = true;
    status(`RTSTRUCT ${rt.label} loaded as label map (the current segmentation)`);
    renderViews();
  }

  function roiBox(rt, roi) {
    const empty = roi.voxels === 0;
    return el("label", {className: "segment roi-label", title: empty ? "no contour on this series' slices" : ""},
      el("input", {type: "checkbox", className: "roi", disabled: empty,
        dataset: {rt: rt.series_uid, number: roi.number}, onchange: renderViews}),
      el("span", {className: "swatch", style: `background:${roi.color}`}), ` ${roi.number} ${roi.name}`);
  }

  async function loadRtOverlays(info) {
    const box = $("#rt-overlays");
    box.replaceChildren();
    const structures = await api(`/api/volumes/${info.id}/rtstructs`);
    if (!structures.length || !current()) return;
    box.append(el("strong", {text: "RTSTRUCT"}));
    for (const rt of structures) {
      box.append(el("span", {className: "seg-title", text: rt.label}), ...rt.rois.map(roi => roiBox(rt, roi)),
        el("button", {className: "labelmap-button", text: "Load as label map", onclick: () => loadLabelMap(rt)}));
    }
  }

  // called before app.js renders the new volume's views, so the first render has its frame
  function volumeLoaded(info) {
    stop();
    cine.volumeId = info.id;
    cine.frame = 0;
    setupCine(info);
    setupColour(info);
    setupViews(info);
    $("#rt-overlays").replaceChildren();
    if (state.source && state.source.series_uid !== info.series_uid && state.source.modality === "RTSTRUCT") {
      $("#volume-title").textContent = `${info.modality} ${info.shape.axial}×${info.shape.coronal}×${info.shape.sagittal}` +
        ` · the image series of RTSTRUCT ${state.source.description || ""}`;
    }
    loadRtOverlays(info);
  }

  return {params, volumeLoaded, play, stop, state: cine};
})();
window.viewerExtra = viewerExtra;
