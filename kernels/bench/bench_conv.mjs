// onnxruntime-node CPU reference of the conv benchmark
// (.ci/bench-kernels-conv.sh): runs each layer of layers.json from the
// ONNX model bench_conv.py exported into DIR (node bench_conv.mjs DIR
// [reps]), on 2 intra-op threads, and prints one JSON object per line:
// {"name": ..., "ms": ...} (median of reps runs after a warm-up).
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";

const here = dirname(fileURLToPath(import.meta.url));
const dir = process.argv[2];
const reps = Number(process.argv[3] || 5);
if (!dir) {
  console.error("usage: node bench_conv.mjs ONNX_DIR [reps]");
  process.exit(2);
}
const doc = JSON.parse(readFileSync(join(here, "layers.json"), "utf8"));

for (const l of doc.layers.concat(doc.norms || [])) {
  const session = await ort.InferenceSession.create(join(dir, l.name + ".onnx"), {
    executionProviders: ["cpu"],
    intraOpNumThreads: 2,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
  });
  const n = l.cin * l.in * l.in * l.in;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.random();
  const feeds = { x: new ort.Tensor("float32", data, [1, l.cin, l.in, l.in, l.in]) };
  await session.run(feeds); // warm-up
  const times = [];
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({ name: l.name, ms: times[Math.floor(times.length / 2)] }));
  await session.release();
}
