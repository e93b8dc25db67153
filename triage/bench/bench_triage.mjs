// onnxruntime-node CPU reference of the triage benchmark
// (.ci/bench-triage.sh): runs each model of WORK/manifest.json (written by
// triage/bench/triagebench: the ONNX file the ensemble ran, the network
// input triage computed for the study) with 2 intra-op threads,
// sequential execution and all graph optimisations, writes its output to
// WORK/STEM.ort.f32 and prints one JSON object per model:
//
//   {"name": ..., "ms": [...], "median_ms": ..., "max_abs_diff": ...,
//    "max_abs_out": ..., "nan": ...}
//
// ms are reps runs after a warm-up; max_abs_diff compares the output with
// radtriage's single forward run (the manifest's output_file), nan counts
// the values where either is NaN (left out of max_abs_diff).
//
//   node triage/bench/bench_triage.mjs WORK [reps]
//
// onnxruntime-node comes from kernels/bench/node_modules (npm ci there,
// kernels/bench/deps.sh); this benchmark adds no package of its own.
import { readFileSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "../../kernels/bench/package.json"));
const ort = require("onnxruntime-node");

const work = process.argv[2];
const reps = Number(process.argv[3] || 5);
if (!work || !(reps >= 1) || process.argv.length > 4) {
  console.error("usage: node bench_triage.mjs WORK [reps]");
  process.exit(2);
}

function readF32(path, shape) {
  const raw = readFileSync(path);
  const n = shape.reduce((a, b) => a * b, 1);
  if (raw.byteLength !== 4 * n) throw new Error(`${path}: ${raw.byteLength} bytes, want ${4 * n} (shape ${shape})`);
  // Copy into an aligned buffer: raw.byteOffset need not be a multiple of 4.
  const x = new Float32Array(n);
  new Uint8Array(x.buffer).set(raw);
  return x;
}

const models = JSON.parse(readFileSync(join(work, "manifest.json"), "utf8"));
for (const m of models) {
  const x = readF32(m.input_file, m.input_shape);
  const ref = readF32(m.output_file, m.output_shape);
  const session = await ort.InferenceSession.create(m.onnx, {
    executionProviders: ["cpu"],
    intraOpNumThreads: 2,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  });
  const feeds = { [m.input]: new ort.Tensor("float32", x, m.input_shape) };
  const out = await session.run(feeds); // warm-up
  const t = out[m.output];
  if (!t) throw new Error(`${m.name}: no output ${m.output} (outputs: ${Object.keys(out)})`);
  if (t.dims.join("x") !== m.output_shape.join("x")) {
    throw new Error(`${m.name}: onnxruntime output shape ${t.dims}, radtriage's ${m.output_shape}`);
  }
  const y = t.data;
  writeFileSync(join(work, m.stem + ".ort.f32"), Buffer.from(y.buffer, y.byteOffset, y.byteLength));
  let diff = 0;
  let mx = 0;
  let nan = 0; // values where either output is NaN
  for (let i = 0; i < y.length; i++) {
    const d = Math.abs(y[i] - ref[i]);
    if (Number.isNaN(d)) nan++;
    else diff = Math.max(diff, d);
    mx = Math.max(mx, Math.abs(y[i]));
  }
  const times = [];
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const sorted = [...times].sort((a, b) => a - b);
  console.log(JSON.stringify({
    name: m.name, ms: times, median_ms: sorted[Math.floor(sorted.length / 2)],
    max_abs_diff: diff, max_abs_out: mx, nan,
  }));
  await session.release();
}
