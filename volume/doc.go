// Package volume turns a series into a 3D voxel grid (issue: volumes).
// Voxels are x-fastest, index z*ny*nx + y*nx + x; spacing in mm; patient
// coordinates are DICOM LPS.
package volume
