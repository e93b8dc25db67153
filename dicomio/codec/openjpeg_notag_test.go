//go:build !(cgo && openjpeg)

package codec_test

import (
	"testing"

	"github.com/radtriage/radtriage/dicomio/codec"
)

// Without the openjpeg build tag (or without cgo) no JPEG 2000 decoder is
// registered, so dicomio reports the syntaxes as unsupported.
func TestOpenJPEGNotBuilt(t *testing.T) {
	for _, uid := range []string{"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"} {
		if d, ok := codec.Lookup(uid); ok {
			t.Errorf("%s has decoder %q without the openjpeg tag", uid, d.Name)
		}
	}
}
