// Package models embeds radtriage's default triage ensemble: two 3D
// segmentation U-Nets and a 3D classifier for intracranial haemorrhage
// (ICH) and subdural haematoma (SDH), as ONNX files with their model
// cards. They are demonstration models, trained by triage/train/train.py
// (`make models`) on synthetic phantoms only, and their cards say so
// ("demonstration": true). Load them with
// triage.LoadEnsembleFS(models.FS, ".", backend, opts).
package models

import "embed"

// FS holds the cards (*.json) and models (*.onnx).
//
//go:embed *.json *.onnx
var FS embed.FS
