// onnxruntime-node CPU reference of the model-inference benchmark
// (.ci/bench-triage-models.sh): runs each model of DIR/models.json
// (written by make_bench_models.py) on DIR/x.f32 with 2 intra-op threads,
// writes its output to DIR/NAME.ort.f32 and prints one JSON object per
// line: {"name": ..., "ms": ..., "min_ms": ...} (the median and the
// fastest of reps runs after a warm-up).
//
//   node triage/bench/bench_models.mjs DIR [reps]
//
// onnxruntime-node comes from kernels/bench/node_modules (npm ci there);
// this benchmark adds no package of its own.
import { readFileSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "../../kernels/bench/package.json"));
const ort = require("onnxruntime-node");

const dir = process.argv[2];
const reps = Number(process.argv[3] || 5);
if (!dir || !(reps >= 1)) {
  console.error("usage: node bench_models.mjs DIR [reps]");
  process.exit(2);
}
const models = JSON.parse(readFileSync(join(dir, "models.json"), "utf8"));
const raw = readFileSync(join(dir, "x.f32"));
// Copy into an aligned buffer: raw.byteOffset need not be a multiple of 4.
const x = new Float32Array(raw.byteLength / 4);
new Uint8Array(x.buffer).set(raw);

for (const m of models) {
  const n = m.input.reduce((a, b) => a * b, 1);
  if (n !== x.length) throw new Error(`${m.name}: input shape ${m.input} needs ${n} values, x.f32 has ${x.length}`);
  const session = await ort.InferenceSession.create(join(dir, m.name + ".onnx"), {
    executionProviders: ["cpu"],
    intraOpNumThreads: 2,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
  });
  const feeds = { x: new ort.Tensor("float32", x, m.input) };
  const out = await session.run(feeds); // warm-up
  const y = out.y.data;
  writeFileSync(join(dir, m.name + ".ort.f32"), Buffer.from(y.buffer, y.byteOffset, y.byteLength));
  const times = [];
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({ name: m.name, ms: times[Math.floor(times.length / 2)], min_ms: times[0] }));
  await session.release();
}
