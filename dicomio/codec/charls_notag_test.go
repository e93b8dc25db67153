//go:build !(cgo && charls)

package codec_test

import (
	"testing"

	"github.com/radtriage/radtriage/dicomio/codec"
)

// Without the charls build tag (or without cgo) no JPEG-LS decoder is
// registered, so dicomio reports the syntaxes as unsupported.
func TestCharLSNotBuilt(t *testing.T) {
	for _, uid := range []string{"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"} {
		if d, ok := codec.Lookup(uid); ok {
			t.Errorf("%s has decoder %q without the charls tag", uid, d.Name)
		}
	}
}
