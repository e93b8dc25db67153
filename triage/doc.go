// Package triage looks at a head CT and says what is urgent in it.
//
// The parts, in the order a study meets them:
//
//   - ReadModel decodes an ONNX file (protowire, bounded by Limits) and
//     Compile turns its graph into a Plan on a kernels.Backend: shape
//     inference, constant folding, BatchNorm folding, fused activations,
//     buffer reuse by liveness.
//   - A ModelCard (JSON beside each model) says what the model finds, at
//     which tier, and the input it expects (spacing, size, window,
//     denoising). Preprocess computes that input from a volume, the same
//     code for serving and, through "radtriage preprocess", for training.
//   - An Ensemble (LoadEnsemble) is a folder of cards and models, loaded
//     and compiled once, so a bad model fails at start. Run preprocesses
//     once per input spec, runs each segmentation model on the input and
//     its test-time flips (DefaultFlips: left-right), averages their
//     probability maps per finding code across flips and models, runs the
//     classifiers, and combines the evidence per code (CombineFinding):
//     threshold, 3D connected components, smallest-lesion filter, then
//     volume, centroid, box and key slice in patient coordinates.
//   - A Result carries the study's scores (every code), positive
//     findings, tier, timings and the label mask on the series' own grid;
//     Result.Stored encodes it (JSON and NIfTI) for a ResultStore, and
//     Urgency turns findings plus the order's priority into the worklist
//     tier.
//
// The default ensemble lives in package triage/models (trained on
// synthetic phantoms by triage/train/train.py: demonstration models).
package triage
