package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

const ctHead = "../../../shared/dicom/ct-head-5mm" // ../shared from the repository root

func TestScanCTHead(t *testing.T) {
	inv, err := Scan(context.Background(), os.DirFS(ctHead))
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Studies) != 1 {
		t.Fatalf("got %d studies, want 1", len(inv.Studies))
	}
	if n, size := inv.Files(); n != 28 || size < 28*512*512*2 {
		t.Errorf("got %d files of %d bytes, want 28 files of at least 28 slices of 512x512x2", n, size)
	}
	skipped := map[string]string{}
	for _, s := range inv.Skipped {
		skipped[s.Path] = s.Reason
	}
	if r := skipped["DIRFILE"]; !strings.Contains(r, "DICOMDIR") {
		t.Errorf("DIRFILE: skip reason %q, want a media storage directory", r)
	}
	if _, ok := skipped["LICENSE"]; !ok {
		t.Errorf("LICENSE not skipped: %v", inv.Skipped)
	}
	sops := map[string]bool{}
	for _, f := range inv.Studies[0].Files {
		if f.SOPInstanceUID == "" || sops[f.SOPInstanceUID] {
			t.Errorf("%s: empty or repeated SOP Instance UID %q", f.Path, f.SOPInstanceUID)
		}
		sops[f.SOPInstanceUID] = true
	}
}

// part10 builds a minimal explicit VR little endian Part 10 file with the
// given media storage class and, when study is set, a Study Instance UID.
func part10(class, sop, study string) []byte {
	var b bytes.Buffer
	b.Write(make([]byte, 128))
	b.WriteString("DICM")
	elem := func(w *bytes.Buffer, group, element uint16, vr, value string) {
		if len(value)%2 == 1 {
			value += "\x00"
		}
		binary.Write(w, binary.LittleEndian, [2]uint16{group, element})
		w.WriteString(vr)
		binary.Write(w, binary.LittleEndian, uint16(len(value)))
		w.WriteString(value)
	}
	var meta bytes.Buffer
	elem(&meta, 0x0002, 0x0002, "UI", class)
	elem(&meta, 0x0002, 0x0003, "UI", sop)
	elem(&meta, 0x0002, 0x0010, "UI", "1.2.840.10008.1.2.1")
	binary.Write(&b, binary.LittleEndian, [2]uint16{0x0002, 0x0000})
	b.WriteString("UL")
	binary.Write(&b, binary.LittleEndian, uint16(4))
	binary.Write(&b, binary.LittleEndian, uint32(meta.Len()))
	b.Write(meta.Bytes())
	elem(&b, 0x0008, 0x0016, "UI", class)
	elem(&b, 0x0008, 0x0018, "UI", sop)
	elem(&b, 0x0008, 0x0060, "CS", "CT")
	if study != "" {
		elem(&b, 0x0020, 0x000D, "UI", study)
	}
	elem(&b, 0x0020, 0x000E, "UI", "1.2.3.4")
	return b.Bytes()
}

func TestScanSelects(t *testing.T) {
	const ct = "1.2.840.10008.5.1.4.1.1.2"
	valid := part10(ct, "1.2.3.1", "1.2.9")
	fsys := fstest.MapFS{
		"a/one.dcm":       {Data: valid},
		"a/two":           {Data: part10(ct, "1.2.3.2", "1.2.9")},
		"b/other":         {Data: part10(ct, "1.2.3.3", "1.2.8")},
		"DICOMDIR":        {Data: part10(MediaStorageDirectory, "1.2.3.4", "")},
		"notes.txt":       {Data: []byte("hello")},
		"empty":           {Data: nil},
		"nostudy.dcm":     {Data: part10(ct, "1.2.3.5", "")},
		"truncated.dcm":   {Data: valid[:150]},
		"garbage-after-m": {Data: append(valid[:132:132], bytes.Repeat([]byte{0xFF}, 300)...)},
	}
	inv, err := Scan(context.Background(), fsys)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range inv.Studies {
		for _, f := range s.Files {
			got = append(got, s.UID+" "+f.Path+" "+f.SOPInstanceUID)
		}
	}
	want := []string{"1.2.8 b/other 1.2.3.3", "1.2.9 a/one.dcm 1.2.3.1", "1.2.9 a/two 1.2.3.2"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("selected:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(inv.Skipped) != 6 {
		t.Errorf("skipped %d files, want 6: %v", len(inv.Skipped), inv.Skipped)
	}
	for _, s := range inv.Skipped {
		if s.Reason == "" {
			t.Errorf("%s skipped without a reason", s.Path)
		}
	}
}

func TestBatches(t *testing.T) {
	inv := &Inventory{Studies: []Study{
		{UID: "1", Files: []File{{Path: "a", Size: 40, SOPInstanceUID: "1"}, {Path: "b", Size: 40, SOPInstanceUID: "2"},
			{Path: "c", Size: 20, SOPInstanceUID: "3"}, {Path: "d", Size: 150, SOPInstanceUID: "4"}, {Path: "e", Size: 10, SOPInstanceUID: "5"}}},
		{UID: "2", Files: []File{{Path: "f", Size: 10, SOPInstanceUID: "6"}, {Path: "g", Size: 10, SOPInstanceUID: "7"},
			{Path: "h", Size: 10, SOPInstanceUID: "6"}, {Path: "i", Size: 10, SOPInstanceUID: "8"}}},
	}}
	var got []string
	for _, b := range Batches(inv, 100) {
		var names string
		for _, f := range b {
			names += f.Path
		}
		got = append(got, names)
	}
	// f and h share a SOP Instance UID: h starts a new batch.
	if want := "abc d e fg hi"; strings.Join(got, " ") != want {
		t.Errorf("batches %q, want %q", strings.Join(got, " "), want)
	}
}

func TestScanFollowsFileLinks(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/real.dcm", part10("1.2.840.10008.5.1.4.1.1.2", "1.2.3.1", "1.2.9"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir+"/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../real.dcm", dir+"/sub/link.dcm"); err != nil {
		t.Skip("no symlinks here:", err)
	}
	if err := os.Symlink("..", dir+"/sub/loop"); err != nil {
		t.Fatal(err)
	}
	inv, err := Scan(context.Background(), os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := inv.Files(); n != 2 {
		t.Errorf("got %d files, want real.dcm and the link to it: %+v", n, inv.Studies)
	}
}

// TestScanSyntaxes reads the identity of the same data in every encoding
// ReadIdentity handles: implicit VR, big endian, deflated, compressed.
func TestScanSyntaxes(t *testing.T) {
	for _, tt := range []struct {
		dir          string
		files, skip  int
		wantOneStudy bool
	}{
		{"ct-head-5mm.deflate", 28, 0, true},
		{"ct-head-5mm.jpll", 28, 0, true},
		{"ct-head-5mm.rle", 28, 0, true},
		{"transfer-syntaxes", 9, 19, true}, // implicit, explicit, big endian, …; Ref/ holds NIfTI and JSON
	} {
		t.Run(tt.dir, func(t *testing.T) {
			inv, err := Scan(context.Background(), os.DirFS(ctHead+"/../"+tt.dir))
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := inv.Files(); n != tt.files || len(inv.Skipped) != tt.skip || (tt.wantOneStudy && len(inv.Studies) != 1) {
				t.Errorf("%d files in %d studies, %d skipped; want %d files in one study, %d skipped: %v",
					n, len(inv.Studies), len(inv.Skipped), tt.files, tt.skip, inv.Skipped)
			}
		})
	}
}

// TestReadIdentitySequences: sequences of undefined length, nested, before
// the Study Instance UID are skipped; damaged ones are errors.
func TestReadIdentitySequences(t *testing.T) {
	const ct = "1.2.840.10008.5.1.4.1.1.2"
	base := part10(ct, "1.2.3.1", "") // ends with (0008,0060) and (0020,000E): no study yet
	u32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	tag := func(g, e uint16) []byte {
		return append(binary.LittleEndian.AppendUint16(nil, g), binary.LittleEndian.AppendUint16(nil, e)...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cut := len(base) - 8 - 8 // drop (0020,000E) "1.2.3.4\0"
	head := base[:cut]
	study := cat(tag(0x0020, 0x000D), []byte("UI"), []byte{6, 0}, []byte("1.2.99"))
	// (0008,1140) SQ, undefined length: an undefined-length item holding a
	// nested undefined-length SQ, then a defined-length item.
	nested := cat(tag(0x0008, 0x1155), []byte("SQ"), []byte{0, 0}, u32(undefinedLength),
		tag(0xFFFE, 0xE000), u32(undefinedLength), tag(0xFFFE, 0xE00D), u32(0),
		tag(0xFFFE, 0xE0DD), u32(0))
	seq := cat(tag(0x0008, 0x1140), []byte("SQ"), []byte{0, 0}, u32(undefinedLength),
		tag(0xFFFE, 0xE000), u32(undefinedLength), nested, tag(0xFFFE, 0xE00D), u32(0),
		tag(0xFFFE, 0xE000), u32(4), []byte{1, 2, 3, 4},
		tag(0xFFFE, 0xE0DD), u32(0))
	tests := []struct {
		name, wantStudy, wantErr string
		data                     []byte
	}{
		{"sequences skipped", "1.2.99", "", cat(head, seq, study)},
		{"no study", "", "no Study Instance UID", base},
		{"truncated sequence", "", "unexpected EOF", cat(head, seq[:len(seq)-8])},
		{"element where an item belongs", "", "where an item belongs", cat(head, tag(0x0008, 0x1140), []byte("SQ"), []byte{0, 0}, u32(undefinedLength), study)},
		{"huge length", "", "unexpected EOF", cat(head, tag(0x0008, 0x1140), []byte("SQ"), []byte{0, 0}, u32(0xFFFFFFF0), study)},
		{"huge UID", "", "UID value of", cat(head, tag(0x0020, 0x000D), []byte("UI"), []byte{0xFF, 0xFF})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, sop, err := ReadIdentity(bytes.NewReader(tt.data))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.wantStudy || sop != "1.2.3.1" {
				t.Errorf("got %q %q %v, want %q 1.2.3.1", got, sop, err, tt.wantStudy)
			}
		})
	}
}
