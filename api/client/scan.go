package client

import (
	"bufio"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
)

// MediaStorageDirectory is the SOP Class UID of a DICOMDIR (PS3.10 Media
// Storage Directory Storage). Such objects are not images and are skipped.
const MediaStorageDirectory = "1.2.840.10008.1.3.10"

// File is one DICOM Part 10 file found by Scan.
type File struct {
	Path             string // slash-separated, relative to the scanned fs.FS
	Size             int64
	StudyInstanceUID string
	SOPInstanceUID   string
}

// Skipped is a file Scan did not select, with the reason.
type Skipped struct {
	Path   string
	Reason string
}

// Study is the files of one Study Instance UID, in path order.
type Study struct {
	UID   string
	Files []File
}

// Inventory is the result of Scan.
type Inventory struct {
	Studies []Study // ordered by UID
	Skipped []Skipped
}

// Files returns the number of selected files and their total size.
func (inv *Inventory) Files() (n int, bytes int64) {
	for _, s := range inv.Studies {
		for _, f := range s.Files {
			n++
			bytes += f.Size
		}
	}
	return n, bytes
}

// errSkip marks a file that is readable but not something to send.
type errSkip struct{ reason string }

func (e errSkip) Error() string { return e.reason }

// Scan walks fsys from its root and returns the DICOM files grouped by
// study. Unreadable or non-DICOM files are listed in Skipped; only an error
// walking the tree itself (or ctx ending) is returned as an error.
func Scan(ctx context.Context, fsys fs.FS) (*Inventory, error) {
	inv := &Inventory{}
	byStudy := map[string][]File{}
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == "." {
				return err
			}
			inv.Skipped = append(inv.Skipped, Skipped{path, err.Error()})
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			// Follow links to files (not to folders: no cycles).
			if st, err := fs.Stat(fsys, path); err != nil || !st.Mode().IsRegular() {
				return nil
			}
		} else if !d.Type().IsRegular() {
			return nil
		}
		f, err := identify(fsys, path)
		if err != nil {
			inv.Skipped = append(inv.Skipped, Skipped{path, err.Error()})
			return nil
		}
		byStudy[f.StudyInstanceUID] = append(byStudy[f.StudyInstanceUID], f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for uid, files := range byStudy {
		inv.Studies = append(inv.Studies, Study{UID: uid, Files: files})
	}
	slices.SortFunc(inv.Studies, func(a, b Study) int { return strings.Compare(a.UID, b.UID) })
	return inv, nil
}

// identify opens one file and reads what Scan needs from it.
func identify(fsys fs.FS, path string) (File, error) {
	fh, err := fsys.Open(path)
	if err != nil {
		return File{}, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return File{}, err
	}
	study, sop, err := ReadIdentity(fh)
	if err != nil {
		return File{}, err
	}
	return File{Path: path, Size: st.Size(), StudyInstanceUID: study, SOPInstanceUID: sop}, nil
}

// Transfer syntaxes whose data set encoding differs from explicit VR little
// endian (the encoding of every compressed syntax too).
const (
	implicitVRLittleEndian         = "1.2.840.10008.1.2"
	explicitVRBigEndian            = "1.2.840.10008.1.2.2"
	deflatedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99"
)

// Tags ReadIdentity reads, as group<<16 | element.
const (
	tagMediaStorageSOPClassUID    = 0x00020002
	tagMediaStorageSOPInstanceUID = 0x00020003
	tagTransferSyntaxUID          = 0x00020010
	tagSOPInstanceUID             = 0x00080018
	tagStudyInstanceUID           = 0x0020000D
	tagItem                       = 0xFFFEE000
	tagItemDelimitation           = 0xFFFEE00D
	tagSequenceDelimitation       = 0xFFFEE0DD
	undefinedLength               = 0xFFFFFFFF
	maxNesting                    = 32
	maxUIDLength                  = 1024 // UIDs are 64 bytes; generous for sloppy padding
)

// ReadIdentity reads a DICOM Part 10 stream up to its Study Instance UID
// and returns that and the SOP Instance UID (from the file meta, else the
// data set). It reads the file meta group and then skips the data set's
// elements by their lengths, never holding more than one short value: a
// damaged length costs an error, not memory.
func ReadIdentity(r io.Reader) (study, sop string, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var head [132]byte
	if _, err := io.ReadFull(br, head[:]); err != nil {
		return "", "", errSkip{"not a DICOM Part 10 file (shorter than the 132-byte preamble)"}
	}
	if string(head[128:]) != "DICM" {
		return "", "", errSkip{`not a DICOM Part 10 file (no "DICM" at offset 128)`}
	}
	// The file meta group: explicit VR little endian whatever the syntax.
	d := &decoder{r: br, order: binary.LittleEndian, explicit: true}
	var class, syntax string
	for {
		b, err := br.Peek(2)
		if err != nil || binary.LittleEndian.Uint16(b) != 0x0002 {
			break
		}
		tag, vr, vl, err := d.header()
		if err != nil {
			return "", "", fmt.Errorf("unreadable file meta: %w", err)
		}
		switch tag {
		case tagMediaStorageSOPClassUID:
			class, err = d.uid(vl)
		case tagMediaStorageSOPInstanceUID:
			sop, err = d.uid(vl)
		case tagTransferSyntaxUID:
			syntax, err = d.uid(vl)
		default:
			err = d.skip(vr, vl, 0)
		}
		if err != nil {
			return "", "", fmt.Errorf("unreadable file meta: %w", err)
		}
	}
	if class == MediaStorageDirectory {
		return "", "", errSkip{"media storage directory (DICOMDIR), not an instance"}
	}
	switch syntax {
	case "":
		return "", "", errSkip{"no Transfer Syntax UID (0002,0010) in the file meta"}
	case implicitVRLittleEndian:
		d.explicit = false
	case explicitVRBigEndian:
		d.order = binary.BigEndian
	case deflatedExplicitVRLittleEndian:
		d.r = bufio.NewReader(flate.NewReader(br))
	}
	for {
		tag, vr, vl, err := d.header()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return "", "", fmt.Errorf("unreadable data set: %w", err)
		}
		if tag > tagStudyInstanceUID {
			break // elements come in tag order: the UID is absent
		}
		switch tag {
		case tagStudyInstanceUID:
			study, err = d.uid(vl)
		case tagSOPInstanceUID:
			var s string
			if s, err = d.uid(vl); sop == "" {
				sop = s
			}
		default:
			err = d.skip(vr, vl, 0)
		}
		if err != nil {
			return "", "", fmt.Errorf("unreadable data set: %w", err)
		}
		if study != "" {
			break
		}
	}
	if study == "" {
		return "", "", errSkip{"no Study Instance UID (0020,000D)"}
	}
	if sop == "" {
		return "", "", errSkip{"no SOP Instance UID"}
	}
	return study, sop, nil
}

// decoder reads element headers and skips values in one encoding.
type decoder struct {
	r        *bufio.Reader
	order    binary.ByteOrder
	explicit bool
	buf      [8]byte
}

// header reads an element header: tag, VR ("" in implicit VR and for item
// tags) and value length.
func (d *decoder) header() (tag uint32, vr string, vl uint32, err error) {
	b := d.buf[:]
	if _, err := io.ReadFull(d.r, b[:4]); err != nil {
		return 0, "", 0, err // io.EOF exactly at an element boundary: the end
	}
	tag = uint32(d.order.Uint16(b[0:2]))<<16 | uint32(d.order.Uint16(b[2:4]))
	if !d.explicit || tag>>16 == 0xFFFE { // item tags have no VR in any syntax
		if _, err := io.ReadFull(d.r, b[:4]); err != nil {
			return 0, "", 0, truncated(err)
		}
		return tag, "", d.order.Uint32(b[:4]), nil
	}
	if _, err := io.ReadFull(d.r, b[:4]); err != nil {
		return 0, "", 0, truncated(err)
	}
	vr = string(b[:2])
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		if _, err := io.ReadFull(d.r, b[4:8]); err != nil {
			return 0, "", 0, truncated(err)
		}
		return tag, vr, d.order.Uint32(b[4:8]), nil
	}
	return tag, vr, uint32(d.order.Uint16(b[2:4])), nil
}

// uid reads a short string value.
func (d *decoder) uid(vl uint32) (string, error) {
	if vl > maxUIDLength {
		return "", fmt.Errorf("UID value of %d bytes", vl)
	}
	b := make([]byte, vl)
	if _, err := io.ReadFull(d.r, b); err != nil {
		return "", truncated(err)
	}
	return strings.TrimRight(string(b), " \x00"), nil
}

// skip passes over a value; an undefined length is a sequence (or
// encapsulated data: items ended by a sequence delimiter all the same).
func (d *decoder) skip(vr string, vl uint32, depth int) error {
	if vl != undefinedLength {
		if _, err := d.r.Discard(int(vl)); err != nil {
			return truncated(err)
		}
		return nil
	}
	if depth >= maxNesting {
		return fmt.Errorf("sequences nested deeper than %d", maxNesting)
	}
	for {
		tag, _, il, err := d.header()
		if err != nil {
			return truncated(err)
		}
		switch tag {
		case tagSequenceDelimitation:
			return nil
		case tagItem:
		default:
			return fmt.Errorf("element (%04X,%04X) inside a sequence where an item belongs", tag>>16, tag&0xFFFF)
		}
		if il != undefinedLength {
			if _, err := d.r.Discard(int(il)); err != nil {
				return truncated(err)
			}
			continue
		}
		for { // an item of undefined length: elements up to its delimiter
			tag, vr, vl, err := d.header()
			if err != nil {
				return truncated(err)
			}
			if tag == tagItemDelimitation {
				break
			}
			if err := d.skip(vr, vl, depth+1); err != nil {
				return err
			}
		}
	}
}

// truncated turns an end of input in the middle of an element into
// io.ErrUnexpectedEOF, so that only a clean end reads as io.EOF.
func truncated(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
