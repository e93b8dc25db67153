// Package dicomio owns DICOM bytes: parsing and validating instances
// (github.com/suyashkumar/dicom v1.1.0 underneath, behind a recover), the
// DICOM JSON model (PS3.18 Annex F) for metadata, pixel data decoding,
// and multipart/related DICOMweb bodies.
//
// It knows nothing about HTTP, SQL or Redis: callers hand it readers and
// get back values or typed errors. Every refusal of an instance is a
// *RejectError carrying a DICOM failure reason code (PS3.18 Table I.2-3 /
// PS3.4 Annex GG) and a sentence a human can act on.
//
// Reading an instance holds it in memory (callers bound its size) and goes
// through three steps:
//
//  1. the file meta information (group 0002) is read by this package; a
//     data set without it has its syntax inferred from its first element;
//     a deflated data set is inflated here, refusing anything that would
//     inflate beyond max(64 MiB, 50 × compressed);
//  2. a structural pass (scan.go) walks every element the way the library
//     will, checking each declared length against the bytes actually left
//     and capping sequence nesting, so that the library can neither
//     allocate from a hostile length nor silently drop a truncated element;
//  3. the library parses the checked data set, given a synthetic file meta
//     header that names one of the three syntaxes it reads, behind a
//     recover; its result fills the Instance.
//
// Ingest only reads: ReadInstance never decodes pixel data, so an instance
// whose syntax radtriage cannot decode is still stored and served.
// NativeFrames and PixelDataBytes return the stored bytes, in the transfer
// syntax's byte order. DecodePixels and DecodeFrames decode them (pixels.go):
// native data of any layout (native.go), encapsulated frames rebuilt from
// their fragments (encaps.go), and the codecs registered in package
// codec: RLE, JPEG Lossless and JPEG DCT (pure Go, written here), JPEG
// 2000 and JPEG-LS (OpenJPEG and CharLS through cgo, in builds with the
// openjpeg and charls tags). Pixels.Int32 and Pixels.Float32 apply Bits
// Stored, High Bit, Pixel Representation and rescale in one loop.
package dicomio
