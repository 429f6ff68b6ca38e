// Runs every API method of the npm package dicomweb-client against a DICOMweb server.
//
//   node driver.js <path of the dicomweb-client package> <DICOMweb root URL> <uids.json> <out dir>
//
// uids.json: {"study": ..., "series": ..., "sop": ..., "frames_sop": ..., "frames_series": ...,
// "frames_study": ..., "store": "<path of a Part 10 file to store>"}. Each answer is written to
// <out dir> (binary parts as files); a JSON report goes to <out dir>/report.json (the package logs to stdout): one entry per method with
// {ok, status, files | value}. The package is written for browsers (XMLHttpRequest); the
// small XMLHttpRequest below, over Node's fetch, is all it needs of one.
"use strict";

const fs = require("fs");
const path = require("path");

class NodeXMLHttpRequest {
  constructor() {
    this.readyState = 0;
    this.status = 0;
    this.response = null;
    this.responseType = "";
    this.headers = {};
    this.answerHeaders = null;
  }
  open(method, url) {
    this.method = method;
    this.url = url;
    this.readyState = 1;
  }
  setRequestHeader(name, value) {
    this.headers[name] = value;
  }
  getResponseHeader(name) {
    return this.answerHeaders ? this.answerHeaders.get(name) : null;
  }
  getAllResponseHeaders() {
    const lines = [];
    if (this.answerHeaders) this.answerHeaders.forEach((v, k) => lines.push(`${k}: ${v}`));
    return lines.join("\r\n");
  }
  send(data) {
    const init = { method: this.method, headers: this.headers };
    if (data !== undefined && data !== null) init.body = data;
    fetch(this.url, init).then(
      async (answer) => {
        this.status = answer.status;
        this.answerHeaders = answer.headers;
        const body = await answer.arrayBuffer();
        if (this.responseType === "arraybuffer") {
          this.response = body;
        } else {
          const text = new TextDecoder().decode(body);
          this.responseText = text;
          if (this.responseType === "json") {
            try {
              this.response = text ? JSON.parse(text) : null;
            } catch (e) {
              this.response = null;
            }
          } else {
            this.response = text;
          }
        }
        this.finish();
      },
      (error) => {
        this.status = 0;
        this.response = String(error);
        this.finish();
      },
    );
  }
  finish() {
    this.readyState = 4;
    if (this.onreadystatechange) this.onreadystatechange();
    if (this.onloadend) this.onloadend();
  }
}
globalThis.XMLHttpRequest = NodeXMLHttpRequest;

const [packageDir, url, uidsFile, outDir] = process.argv.slice(2);
const { api } = require(path.resolve(packageDir));
const uids = JSON.parse(fs.readFileSync(uidsFile, "utf8"));
const client = new api.DICOMwebClient({ url, verbose: false });
const report = {};

function save(name, parts) {
  return parts.map((part, index) => {
    const file = path.join(outDir, `${name}-${index}.bin`);
    fs.writeFileSync(file, Buffer.from(part));
    return file;
  });
}

async function call(name, run, binary) {
  try {
    const value = await run();
    if (binary) {
      report[name] = { ok: true, files: save(name, Array.isArray(value) ? value : [value]) };
    } else {
      report[name] = { ok: true, value };
    }
  } catch (error) {
    report[name] = { ok: false, status: error.status || 0, message: String(error.message) };
  }
}

async function main() {
  const instance = { studyInstanceUID: uids.study, seriesInstanceUID: uids.series,
    sopInstanceUID: uids.sop };
  const frames = { studyInstanceUID: uids.frames_study, seriesInstanceUID: uids.frames_series,
    sopInstanceUID: uids.frames_sop };
  await call("searchForStudies", () => client.searchForStudies());
  await call("searchForStudiesPaged", () =>
    client.searchForStudies({ queryParams: { limit: 1, offset: 1, includefield: "all" } }));
  await call("searchForSeries", () => client.searchForSeries({ studyInstanceUID: uids.study }));
  await call("searchForSeriesFiltered", () =>
    client.searchForSeries({ queryParams: { Modality: "MR" } }));
  await call("searchForInstances", () =>
    client.searchForInstances({ studyInstanceUID: uids.study, seriesInstanceUID: uids.series }));
  await call("searchForAllInstances", () => client.searchForInstances());
  await call("retrieveStudyMetadata", () =>
    client.retrieveStudyMetadata({ studyInstanceUID: uids.study }));
  await call("retrieveSeriesMetadata", () =>
    client.retrieveSeriesMetadata({ studyInstanceUID: uids.study, seriesInstanceUID: uids.series }));
  await call("retrieveInstanceMetadata", () => client.retrieveInstanceMetadata(instance));
  await call("retrieveInstance", () => client.retrieveInstance(instance), true);
  await call("retrieveSeries", () =>
    client.retrieveSeries({ studyInstanceUID: uids.study, seriesInstanceUID: uids.series }), true);
  await call("retrieveStudy", () => client.retrieveStudy({ studyInstanceUID: uids.study }), true);
  await call("retrieveInstanceFrames", () =>
    client.retrieveInstanceFrames({ ...frames, frameNumbers: [1, 3] }), true);
  await call("retrieveInstanceRendered", () =>
    client.retrieveInstanceRendered({ ...instance, mediaTypes: [{ mediaType: "image/png" }] }), true);
  await call("retrieveInstanceThumbnail", () =>
    client.retrieveInstanceThumbnail({ ...instance, mediaTypes: [{ mediaType: "image/jpeg" }] }), true);
  await call("retrieveInstanceFramesRendered", () =>
    client.retrieveInstanceFramesRendered({ ...frames, frameNumbers: [2],
      mediaTypes: [{ mediaType: "image/png" }] }), true);
  await call("retrieveInstanceFramesThumbnail", () =>
    client.retrieveInstanceFramesThumbnail({ ...frames, frameNumbers: [2],
      mediaTypes: [{ mediaType: "image/jpeg" }] }), true);
  const metadata = report.retrieveInstanceMetadata.ok ? report.retrieveInstanceMetadata.value : [];
  const uri = (metadata[0] || metadata)["7FE00010"]?.BulkDataURI;
  await call("retrieveBulkData", () => client.retrieveBulkData({ BulkDataURI: uri }), true);
  const stored = fs.readFileSync(uids.store);
  await call("storeInstances", () =>
    client.storeInstances({ datasets: [stored.buffer.slice(stored.byteOffset,
      stored.byteOffset + stored.byteLength)] }));
  await call("buildInstanceWadoURIUrl", async () => client.buildInstanceWadoURIUrl(instance));
  client.setDebug(false);
  client.setVerbose(false);
  report.debugAndVerbose = { ok: client.getDebug() === false && client.getVerbose() === false };
  fs.writeFileSync(path.join(outDir, "report.json"), JSON.stringify(report));
}

main().catch((error) => {
  process.stderr.write(`driver failed: ${error.stack || error}\n`);
  process.exit(1);
});
