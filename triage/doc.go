// Package triage runs ONNX models on a kernels.Backend, combines the
// ensemble into findings and scores urgency (issue: triage).
package triage
