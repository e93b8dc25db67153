// Package client is a DICOMweb STOW-RS client: it finds the DICOM Part 10
// files under a folder, groups them by study, and sends each study as one
// or more multipart/related; type="application/dicom" requests to
// {base}/studies, streaming every file from disk (memory use does not grow
// with the size of the folder).
//
// Scan reads only the file meta group and the top of each data set, up to
// the Study Instance UID, with a small reader of its own (ReadIdentity)
// that skips values by their lengths: implicit and explicit VR, little and
// big endian, deflated. It never allocates from a declared length (the
// DICOM library does, so a damaged file could cost gigabytes). Files that
// are not Part 10 (no "DICM" prefix at offset 128) and media storage
// directories (DICOMDIR, Media Storage SOP Class 1.2.840.10008.1.3.10) are
// skipped with a reason; the server judges everything else.
//
// Client.Push sends the batches with bounded concurrency, retries network
// errors, 5xx and 429 responses with exponential backoff (honouring
// Retry-After), never retries other 4xx responses, and reads the
// application/dicom+json response (PS3.18 Table I.2-2) into one Result per
// file: stored, stored with a warning, or failed with a reason.
package client
